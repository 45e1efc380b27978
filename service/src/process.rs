//! What every binary of the system does the same way: logging to standard error, a tokio runtime,
//! one clear line and exit status 1 on error, and shutdown on SIGTERM or Ctrl-C.

use std::future::Future;

/// Log filter directives that keep the cloud SDKs to warnings unless `RUST_LOG` says otherwise.
pub const QUIET_SDKS: &str = "typespec_client_core=warn,azure_core=warn,azure_storage_blob=warn,azure_identity=warn,aws_config=warn,aws_smithy_runtime=warn";

/// Runs `main` on a multi-threaded runtime with logs filtered by `RUST_LOG` (else `default_log`), as
/// text or, with `CLOUDBENCH_LOG_FORMAT=json`, JSON lines.
/// An error is printed as one line, `error: ...` with its causes, and the process exits with 1.
pub fn run_main<F>(default_log: &str, main: F)
where
    F: Future<Output = anyhow::Result<()>>,
{
    // The cloud SDKs log every failed request at info; our own lines say what failed, once.
    let default_log = format!("{default_log},{QUIET_SDKS}");
    let logs = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| default_log.into()))
        .with_writer(std::io::stderr);
    // One JSON object per line for log pipelines (CloudWatch, Azure Monitor, Loki).
    if std::env::var("CLOUDBENCH_LOG_FORMAT").is_ok_and(|f| f == "json") {
        logs.json().init();
    } else {
        logs.init();
    }
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    if let Err(e) = runtime.block_on(main) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

/// Resolves on SIGTERM (how containers and schedulers stop a process) or SIGINT.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    tracing::info!("shutdown requested");
}

/// A progress bar of `len` steps on standard error when it is a terminal, a hidden one otherwise
/// (logs, pipes and CI output stay clean): `prefix [=====>    ] pos/len rate eta message`.
pub fn progress_bar(prefix: &str, len: u64) -> indicatif::ProgressBar {
    if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(len).with_prefix(prefix.to_owned());
    if let Ok(style) = indicatif::ProgressStyle::with_template("{prefix:<14} [{bar:40}] {pos}/{len} {per_sec} eta {eta} {msg}") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

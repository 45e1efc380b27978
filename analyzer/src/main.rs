use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use analyzer::collect::collect;
use analyzer::export::{self, Format};
use analyzer::store::MetricsStore;
use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use control::consume::Connector;
use control::{AmqpBroker, Broker, Namespace, RedisStore, RunStore};

/// Collects benchmark metrics and exports them.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Consumes the metrics queue into the store until stopped (SIGTERM, Ctrl-C) or a run completes.
    Collect {
        /// Directory of the metrics store.
        #[arg(long, env = "CLOUDBENCH_STORE", default_value = "metrics-store")]
        store: PathBuf,
        #[arg(long, env = "AMQP_URL", default_value = "amqp://127.0.0.1:5672/%2f")]
        amqp_url: String,
        #[arg(long, env = "REDIS_URL", default_value = "redis://127.0.0.1:6379")]
        redis_url: String,
        #[arg(long, env = "CLOUDBENCH_NAMESPACE", default_value = Namespace::DEFAULT)]
        namespace: String,
        /// Stops once this run is complete and the store holds the metrics of all its done batches.
        #[arg(long)]
        until_complete: Option<String>,
    },
    /// Exports a run's per-batch rows.
    Export {
        #[arg(long, env = "CLOUDBENCH_STORE", default_value = "metrics-store")]
        store: PathBuf,
        #[arg(long)]
        run: String,
        #[arg(long, value_enum, default_value = "csv")]
        format: Format,
        /// Output file; standard output when absent.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

fn main() {
    let cli = Cli::parse();
    control::process::run_main("info", run(cli));
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Collect { store, amqp_url, redis_url, namespace, until_complete } => {
            let ns = Namespace::new(&namespace)?;
            let store = Arc::new(Mutex::new(MetricsStore::open(&store)?));
            let (stop_tx, stop) = tokio::sync::watch::channel(false);
            let stop_tx = Arc::new(stop_tx);
            let signal_tx = stop_tx.clone();
            tokio::spawn(async move {
                control::process::shutdown_signal().await;
                let _ = signal_tx.send(true);
            });
            if let Some(run_id) = until_complete {
                proto::check_name("run id", &run_id)?;
                let state = RedisStore::connect(&redis_url, ns.clone()).await?;
                let watched = store.clone();
                let done_tx = stop_tx.clone();
                tokio::spawn(async move {
                    loop {
                        tokio::time::sleep(Duration::from_millis(300)).await;
                        let Ok(Some(progress)) = state.progress(&run_id).await else { continue };
                        let stored = watched.lock().expect("store lock").count(&run_id).unwrap_or(0) as u64;
                        if progress.is_complete() && stored >= progress.count(control::state::BatchState::Done) {
                            tracing::info!(run_id, stored, "run complete");
                            let _ = done_tx.send(true);
                            return;
                        }
                    }
                });
            }
            let connector: Connector = Arc::new(move || {
                let url = amqp_url.clone();
                Box::pin(async move { AmqpBroker::connect(&url).await.map(|b| Arc::new(b) as Arc<dyn Broker>) })
            });
            let stats = collect(&connector, &ns, store, stop).await;
            eprintln!(
                "collector stopped: {} stored, {} duplicates dropped, {} malformed, {} reconnects",
                stats.stored, stats.duplicates, stats.malformed, stats.reconnects
            );
        }
        Command::Export { store, run, format, out } => {
            proto::check_name("run id", &run)?;
            if !store.is_dir() {
                bail!("metrics store {} not found", store.display());
            }
            let store = MetricsStore::open(&store)?;
            let rows = analyzer::run_rows(&store, &run)?;
            if rows.is_empty() {
                bail!("no metrics for run {run} in the store (runs: {})", store.runs()?.join(", "));
            }
            let bytes = export::render(&rows, format);
            match out {
                Some(path) => std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?,
                None => std::io::Write::write_all(&mut std::io::stdout(), &bytes)?,
            }
        }
    }
    Ok(())
}

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use control::{AmqpBroker, Broker, RedisStore};
use proto::v1::{Versions, WorkerIdentity};
use worker::config::{Args, WorkerConfig};
use worker::runner::{Connector, Worker};

fn main() {
    let args = Args::parse();
    service::run_main("info", run(args));
}

async fn run(args: Args) -> anyhow::Result<()> {
    let config = WorkerConfig::from_args(args).map_err(anyhow::Error::msg)?;
    worker::crash::init().map_err(anyhow::Error::msg)?;
    // A platform that cannot be used at all (wrong credentials, missing bucket, unreachable) is one
    // clear line at start, before any job is taken.
    let source = config.dataset.open().await.with_context(|| format!("platform {}: dataset", config.platform))?;
    let target = config.storage.open().await.with_context(|| format!("platform {}: storage", config.platform))?;
    let inference = match &config.inference {
        Some((endpoint, load)) => {
            let invoker = endpoint.open().await.with_context(|| format!("platform {}: inference", config.platform))?;
            tracing::info!(platform = config.platform, endpoint = invoker.describe(), ?load, "inference phase on");
            Some((invoker, *load))
        }
        None => None,
    };
    let model_hash = inference.as_ref().and_then(|(invoker, _)| invoker.model_hash()).unwrap_or_default();
    let shutdown = tokio::spawn(service::shutdown_signal());
    // Redis may not be up yet (a fresh deployment): keep trying until it is, or until told to stop.
    let mut attempt = 0u32;
    let store = loop {
        match RedisStore::connect(config.redis_url.expose(), config.namespace.clone()).await {
            Ok(s) => break s,
            Err(e) if attempt < 30 && !shutdown.is_finished() => {
                tracing::warn!(error = %e, "run-state store unreachable; retrying");
                attempt += 1;
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(e) => return Err(e.into()),
        }
    };
    let telemetry = Arc::new(service::telemetry::Registry::default());
    // Served until the process ends (the handle lives to the end of main).
    let _metrics = service::telemetry::serve_at(config.metrics_addr, telemetry.clone()).await?;
    let url = config.amqp_url.clone();
    let connections = telemetry.clone();
    let connector: Connector = Arc::new(move || {
        let url = url.clone();
        connections.add("cloudbench_worker_broker_connects_total", "Connections opened to the broker (more than one: reconnects).", &[], 1.0);
        Box::pin(async move { AmqpBroker::connect(url.expose()).await.map(|b| Arc::new(b) as Arc<dyn Broker>) })
    });
    let host = gethostname::gethostname().to_string_lossy().into_owned();
    let worker = Arc::new(Worker {
        identity: WorkerIdentity {
            worker_id: config.worker_id.clone(),
            host,
            platform: config.platform.clone(),
            provider: config.provider.clone(),
            region: config.region.clone(),
            instance_type: config.instance_type.clone(),
            cpus: worker::cpus(),
        },
        versions: Versions { git_commit: worker::GIT_COMMIT.into(), model_hash, worker_version: worker::VERSION.into() },
        platform: config.platform.clone(),
        ns: config.namespace.clone(),
        prefetch: config.prefetch,
        concurrency: config.concurrency,
        grace: config.grace,
        heartbeat: config.heartbeat,
        keep_uploads: config.keep_uploads,
        retry: config.retry,
        source,
        target,
        inference,
        store: Arc::new(store),
        connector,
        telemetry,
    });
    tracing::info!(platform = config.platform, storage = worker.target.describe(), amqp = %config.amqp_url, "worker starting");
    let stats = worker.run(async move {
        let _ = shutdown.await;
    })
    .await;
    eprintln!(
        "worker stopped: {} done, {} failed, {} duplicates dropped, {} cancelled, {} malformed, {} returned, {} reconnects; overhead p50 {} us p99 {} us",
        stats.done,
        stats.failed,
        stats.duplicates,
        stats.cancelled,
        stats.malformed,
        stats.returned,
        stats.reconnects,
        stats.overhead.value_at_quantile(0.5),
        stats.overhead.value_at_quantile(0.99)
    );
    Ok(())
}

//! The `coordinator` command line: the arguments, and one module per group of commands.

mod dataset;
mod start;
mod watch;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use service::telemetry::Registry;
use control::{Namespace, RedisStore};

/// Plans benchmark runs: builds dataset manifests, publishes batch jobs, follows progress.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(flatten)]
    services: Services,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args)]
struct Services {
    /// RabbitMQ URL.
    #[arg(long, env = "AMQP_URL", default_value = "amqp://127.0.0.1:5672/%2f", global = true)]
    amqp_url: String,
    /// Redis URL for run state.
    #[arg(long, env = "REDIS_URL", default_value = "redis://127.0.0.1:6379", global = true)]
    redis_url: String,
    /// Prefix of every queue and key, so deployments sharing servers never collide.
    #[arg(long, env = "CLOUDBENCH_NAMESPACE", default_value = Namespace::DEFAULT, global = true)]
    namespace: String,
    /// While `run`, `schedule` or `status --watch` follows a run, serves Prometheus metrics at
    /// http://ADDR/metrics: batches by platform and state, queue depths, workers, errors, rounds (a
    /// bearer token is required when CLOUDBENCH_METRICS_TOKEN is set).
    #[arg(long, env = "CLOUDBENCH_METRICS_ADDR", global = true)]
    metrics_addr: Option<std::net::SocketAddr>,
}

impl Services {
    /// Starts serving `/metrics` and recording `run_id` into it when `--metrics-addr` is given; the
    /// recording and the server stop when the returned guard is dropped.
    async fn observe(&self, ns: &Namespace, store: &RedisStore, run_id: &str) -> anyhow::Result<Option<(Arc<Registry>, Observing)>> {
        let registry = Arc::new(Registry::default());
        let Some(server) = service::telemetry::serve_at(self.metrics_addr, registry.clone()).await? else { return Ok(None) };
        eprintln!("metrics at http://{}/metrics", server.addr());
        let task = tokio::spawn(coordinator::observe::watch(
            registry.clone(),
            Arc::new(store.clone()),
            self.amqp_url.clone(),
            ns.clone(),
            run_id.to_owned(),
            Duration::from_secs(2),
        ));
        Ok(Some((registry, Observing { watch: task, _server: server })))
    }
}

/// A run being recorded into `/metrics`: when dropped, the recording task is stopped, and the
/// server with it.
struct Observing {
    watch: tokio::task::JoinHandle<()>,
    _server: service::telemetry::MetricsServer,
}

impl Drop for Observing {
    fn drop(&mut self) {
        self.watch.abort();
    }
}

#[derive(Subcommand)]
enum Command {
    /// Builds dataset manifests.
    #[command(subcommand)]
    Dataset(DatasetCommand),
    /// Starts a run from a TOML spec, or resumes it: publishes every batch not queued, running or done.
    Run {
        spec: PathBuf,
        /// Run id (overrides the spec's `run_id`).
        #[arg(long)]
        run_id: Option<String>,
        /// Publishes at most this many jobs per second.
        #[arg(long)]
        max_rate: Option<f64>,
        /// Follows progress until the run completes.
        #[arg(long)]
        watch: bool,
    },
    /// Repeats a run's rounds on a schedule (a long-term stability run): round r is published at
    /// creation + r × EVERY, unless an earlier round is still running, then it is skipped and said so.
    /// Run again after a restart, it resumes the same schedule.
    Schedule {
        spec: PathBuf,
        /// Interval between rounds: 500ms, 90s, 30m, 12h, 1d.
        #[arg(long)]
        every: String,
        /// How long the schedule lasts (the number of rounds is how many intervals fit): 7d, 24h.
        #[arg(long = "for")]
        duration: String,
        #[arg(long)]
        run_id: Option<String>,
    },
    /// Shows progress per platform.
    Status {
        run_id: String,
        /// Prints JSON for scripts.
        #[arg(long)]
        json: bool,
        /// Follows progress until the run completes.
        #[arg(long)]
        watch: bool,
    },
    /// Cancels a run: jobs still queued are dropped by workers; running batches finish.
    Cancel { run_id: String },
}

#[derive(Subcommand)]
enum DatasetCommand {
    /// Generates a deterministic synthetic dataset of COCO-sized JPEGs and its manifest.
    Synth {
        /// Folder to write images and `manifest.json` into.
        #[arg(long)]
        out: PathBuf,
        /// Number of images.
        #[arg(long, default_value_t = 2048)]
        count: u64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Builds a manifest (key, size, SHA-256) of the JPEG and PNG images in a folder, or in a bucket or
    /// container prefix (s3://BUCKET/PREFIX?..., azure://CONTAINER/PREFIX?endpoint=...).
    Scan {
        /// A folder or a store URL.
        location: String,
        /// Manifest path; defaults to `FOLDER/manifest.json` for a folder, required for a store.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Objects downloaded at once when hashing a store.
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
    },
    /// Copies a dataset into a bucket or container prefix, so workers read it from their own cloud.
    /// Objects already there with the right size are skipped: an interrupted seeding resumes.
    Seed {
        /// The dataset: a folder (with `manifest.json` unless --manifest) or a store URL.
        from: String,
        /// The target store URL (s3://BUCKET/PREFIX?..., azure://CONTAINER/PREFIX?...).
        to: String,
        /// Manifest of the dataset; default `FROM/manifest.json`, or a scan of FROM.
        #[arg(long)]
        manifest: Option<PathBuf>,
        /// Creates the bucket or container when it is missing.
        #[arg(long)]
        create: bool,
        /// Objects copied at once.
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
    },
    /// Deletes what workers uploaded for a run and left in a store (killed mid-batch, or kept).
    Cleanup {
        run_id: String,
        /// The platform's store URL.
        store: String,
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
    },
}

fn main() {
    let cli = Cli::parse();
    service::run_main("warn", run(cli));
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let ns = Namespace::new(&cli.services.namespace)?;
    let services = &cli.services;
    match cli.command {
        Command::Dataset(command) => dataset::run(command).await,
        Command::Run { spec, run_id, max_rate, watch } => start::run(services, &ns, &spec, run_id, max_rate, watch).await,
        Command::Schedule { spec, every, duration, run_id } => start::schedule(services, &ns, &spec, &every, &duration, run_id).await,
        Command::Status { run_id, json, watch } => watch::status(services, &ns, &run_id, json, watch).await,
        Command::Cancel { run_id } => watch::cancel(services, &ns, &run_id).await,
    }
}

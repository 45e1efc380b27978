//! The embedded run: the whole pipeline in one process, with no external service.
//!
//! The same code as a deployment (coordinator planning and enqueueing, workers' claim-run-publish-ack
//! loop, the collector and its store) runs over the in-process broker and run-state store, with
//! local directories as the platforms' buckets. It compares two storage configurations of this
//! machine: `disk-durable` flushes every object to disk before acknowledging it, as object stores do,
//! and `disk-cached` leaves writes in the page cache. Unless told otherwise, both platforms then send
//! every downloaded image to one in-process YOLOv8 (the detector behind `invoke`'s batching queue),
//! so every batch has the paper's three phases.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use analyzer::store::MetricsStore;
use anyhow::{Context, bail};
use control::consume::Connector;
use control::{Broker, MemoryBroker, MemoryStore, Namespace, RunStore};
use coordinator::enqueue::{self, EnqueueOptions};
use coordinator::manifest::Manifest;
use coordinator::spec::RunSpec;
use proto::v1::{Versions, WorkerIdentity};
use storage::{LocalDirStore, Storage};
use worker::runner::{Worker, WorkerStats};

/// The platforms the embedded run compares: name and whether writes are flushed to disk.
pub const PLATFORMS: [(&str, bool); 2] = [("disk-durable", true), ("disk-cached", false)];

/// Settings of an embedded run.
#[derive(Debug, Clone)]
pub struct Settings {
    pub out: PathBuf,
    pub images: u64,
    pub batch_size: u32,
    pub rounds: u32,
    pub workers_per_platform: usize,
    pub concurrency: usize,
    pub seed: u64,
    pub run_id: String,
    /// The in-process model both platforms send their images to; `None` for storage only.
    pub inference: Option<invoke::client::LocalConfig>,
    /// Inference requests in flight per worker (closed loop).
    pub inference_concurrency: usize,
}

/// What an embedded run produced.
#[derive(Debug)]
pub struct Outcome {
    pub run_id: String,
    pub batches: u64,
    pub stored: u64,
    pub elapsed: Duration,
    pub workers: Vec<WorkerStats>,
    pub store_dir: PathBuf,
    /// The run spec the embedded run used, for the report.
    pub spec: String,
}

/// Generates the dataset once per seed and size; a second run reuses it.
fn dataset(settings: &Settings) -> anyhow::Result<(PathBuf, Manifest)> {
    let dir = settings.out.join(format!("dataset-seed{}-n{}", settings.seed, settings.images));
    let manifest_path = dir.join("manifest.json");
    if let Ok(manifest) = Manifest::load(&manifest_path) {
        return Ok((dir, manifest));
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let entries = coordinator::synth::generate(settings.seed, settings.images, threads, |key, data| std::fs::write(dir.join(key), data))
        .with_context(|| format!("writing the dataset into {}", dir.display()))?;
    let manifest = Manifest::new(format!("synth seed {} count {}", settings.seed, settings.images), entries).map_err(anyhow::Error::msg)?;
    manifest.save(&manifest_path).with_context(|| format!("writing {}", manifest_path.display()))?;
    Ok((dir, manifest))
}

fn spec_text(settings: &Settings, manifest: &Path) -> String {
    let mut text = format!(
        "run_id = \"{}\"\nmanifest = \"{}\"\nbatch_size = {}\nrounds = {}\n",
        settings.run_id,
        manifest.display(),
        settings.batch_size,
        settings.rounds
    );
    for (name, _) in PLATFORMS {
        text.push_str(&format!("\n[[platform]]\nname = \"{name}\"\n"));
    }
    text
}

/// Runs the whole benchmark in this process and leaves the metrics store under `settings.out`.
pub async fn run(settings: &Settings) -> anyhow::Result<Outcome> {
    if settings.images == 0 || settings.batch_size == 0 || settings.workers_per_platform == 0 {
        bail!("images, batch size and workers per platform must be at least 1");
    }
    let started = Instant::now();
    let (dataset_dir, manifest) = dataset(settings)?;
    let text = spec_text(settings, &dataset_dir.join("manifest.json"));
    let spec = RunSpec::parse(&text, Path::new("."))
        .map_err(|e| anyhow::anyhow!("embedded run spec: {e}"))?;
    let ns = Namespace::new("embedded")?;
    let broker = MemoryBroker::new();
    let state: Arc<dyn RunStore> = Arc::new(MemoryStore::new());
    let store_dir = settings.out.join("store");
    let metrics = Arc::new(Mutex::new(MetricsStore::open(&store_dir)?));
    let report = enqueue::start_run(&broker, state.as_ref(), &ns, &settings.run_id, &spec, &manifest, &EnqueueOptions::default()).await?;

    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let shared = broker.clone();
    let connector: Connector = Arc::new(move || {
        let broker = shared.clone();
        Box::pin(async move { Ok(Arc::new(broker) as Arc<dyn Broker>) })
    });
    let source: Arc<dyn Storage> = Arc::new(LocalDirStore::open(&dataset_dir, false)?);
    // One model for both platforms: they differ in storage only, so their inference compares like
    // with like.
    let invoker = match &settings.inference {
        Some(local) => Some(invoke::TargetConfig::Local(local.clone()).open().await.context("loading the model")?),
        None => None,
    };
    let model_hash = invoker.as_ref().and_then(|i| i.model_hash()).unwrap_or_default();
    let load = worker::inference::Load::Closed { concurrency: settings.inference_concurrency.max(1) };
    let mut workers = Vec::new();
    for (platform, durable) in PLATFORMS {
        let bucket = settings.out.join("buckets").join(platform);
        let target: Arc<dyn Storage> = Arc::new(LocalDirStore::create(&bucket, durable)?);
        for n in 0..settings.workers_per_platform {
            let worker = Arc::new(Worker {
                platform: platform.to_owned(),
                ns: ns.clone(),
                prefetch: 1,
                concurrency: settings.concurrency,
                grace: Duration::from_secs(30),
                heartbeat: Duration::from_secs(5),
                keep_uploads: false,
                retry: storage::RetryPolicy::default(),
                identity: WorkerIdentity {
                    worker_id: format!("{platform}-{n}"),
                    host: "embedded".into(),
                    platform: platform.to_owned(),
                    provider: "local".into(),
                    region: String::new(),
                    instance_type: format!("local-{}", if durable { "fsync" } else { "page-cache" }),
                    cpus: worker::cpus(),
                },
                versions: Versions { git_commit: worker::GIT_COMMIT.into(), model_hash: model_hash.clone(), worker_version: worker::VERSION.into() },
                source: source.clone(),
                target: target.clone(),
                inference: invoker.clone().map(|i| (i, load)),
                store: state.clone(),
                connector: connector.clone(),
                telemetry: Default::default(),
            });
            workers.push(tokio::spawn(worker.run(control::consume::stopped(stop.clone()))));
        }
    }
    let collector = tokio::spawn({
        let (connector, ns, metrics, stop) = (connector.clone(), ns.clone(), metrics.clone(), stop.clone());
        async move { analyzer::collect::collect(&connector, &ns, metrics, stop, Default::default()).await }
    });

    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let progress = state.progress(&settings.run_id).await?.context("run vanished")?;
        let stored = metrics.lock().expect("store lock").count(&settings.run_id)? as u64;
        if progress.is_collected(stored) {
            break;
        }
    }
    let _ = stop_tx.send(true);
    let mut stats = Vec::new();
    for w in workers {
        stats.push(w.await?);
    }
    let collected = collector.await?;
    let dead = broker.drain(&ns.dead_letter_queue());
    if !dead.is_empty() {
        bail!("{} messages were dead-lettered; see the log", dead.len());
    }
    Ok(Outcome {
        run_id: settings.run_id.clone(),
        batches: report.batches,
        stored: collected.stored,
        elapsed: started.elapsed(),
        workers: stats,
        store_dir,
        spec: text,
    })
}

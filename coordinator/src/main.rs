use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use control::telemetry::Registry;
use control::{AmqpBroker, Broker, Namespace, RedisStore, RunStore};
use coordinator::enqueue::{self, EnqueueError, EnqueueOptions};
use coordinator::manifest::Manifest;
use coordinator::spec::RunSpec;
use coordinator::status::{self, StatusView};
use coordinator::{seed, synth};
use control::process::progress_bar;
use storage::{RetryPolicy, StorageConfig};

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
    /// recording stops when the returned guard is dropped.
    async fn observe(&self, ns: &Namespace, store: &RedisStore, run_id: &str) -> anyhow::Result<Option<(Arc<Registry>, AbortOnDrop)>> {
        let Some(addr) = self.metrics_addr else { return Ok(None) };
        let registry = Arc::new(Registry::default());
        let token = std::env::var("CLOUDBENCH_METRICS_TOKEN").ok().filter(|t| !t.is_empty());
        let bound = control::telemetry::serve(addr, registry.clone(), token).await.with_context(|| format!("metrics address {addr}"))?;
        eprintln!("metrics at http://{bound}/metrics");
        let task = tokio::spawn(coordinator::observe::watch(
            registry.clone(),
            Arc::new(store.clone()),
            self.amqp_url.clone(),
            ns.clone(),
            run_id.to_owned(),
            Duration::from_secs(2),
        ));
        Ok(Some((registry, AbortOnDrop(task))))
    }
}

/// Stops a background task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
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
    control::process::run_main("warn", run(cli));
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let ns = Namespace::new(&cli.services.namespace)?;
    match cli.command {
        Command::Dataset(DatasetCommand::Synth { out, count, seed }) => {
            if count == 0 {
                bail!("--count must be at least 1");
            }
            std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
            let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
            let bar = progress_bar("writing", 0);
            bar.set_length(count);
            let entries = synth::generate(seed, count, threads, |key, data| {
                bar.inc(1);
                std::fs::write(out.join(key), data)
            })
            .with_context(|| format!("writing images into {}", out.display()))?;
            bar.finish_and_clear();
            let manifest = Manifest::new(format!("synth seed {seed} count {count}"), entries).map_err(anyhow::Error::msg)?;
            let path = out.join("manifest.json");
            manifest.save(&path).with_context(|| format!("writing {}", path.display()))?;
            println!("{} images, {:.1} MiB, manifest {}", count, manifest.bytes() as f64 / 1048576.0, path.display());
        }
        Command::Dataset(DatasetCommand::Scan { location, out, concurrency }) => {
            let (manifest, path) = match StorageConfig::from_url(&location).map_err(anyhow::Error::msg)? {
                StorageConfig::Local { path: folder, .. } => {
                    let path = out.unwrap_or_else(|| folder.join("manifest.json"));
                    (Manifest::scan(&folder)?, path)
                }
                config => {
                    let path = out.context("--out is required when scanning a bucket or container")?;
                    let store = config.open().await?;
                    let bar = progress_bar("hashing", 0);
                    (seed::scan(store.as_ref(), concurrency, RetryPolicy::default(), &bar).await.map_err(anyhow::Error::msg)?, path)
                }
            };
            manifest.save(&path).with_context(|| format!("writing {}", path.display()))?;
            println!("{} images, {:.1} MiB, manifest {}", manifest.objects.len(), manifest.bytes() as f64 / 1048576.0, path.display());
        }
        Command::Dataset(DatasetCommand::Seed { from, to, manifest, create, concurrency }) => {
            let from_config = StorageConfig::from_url(&from).map_err(anyhow::Error::msg)?;
            let to_config = StorageConfig::from_url(&to).map_err(anyhow::Error::msg)?;
            let source = from_config.open().await.context("dataset")?;
            if create {
                to_config.create().await.context("creating the target")?;
            }
            let target = to_config.open().await.context("target")?;
            let manifest = match (manifest, &from_config) {
                (Some(path), _) => Manifest::load(&path)?,
                (None, StorageConfig::Local { path, .. }) if path.join("manifest.json").exists() => Manifest::load(&path.join("manifest.json"))?,
                (None, _) => seed::scan(source.as_ref(), concurrency, RetryPolicy::default(), &progress_bar("hashing", 0)).await.map_err(anyhow::Error::msg)?,
            };
            let bar = progress_bar("seeding", 0);
            let done = seed::seed(source.as_ref(), target.as_ref(), &manifest, concurrency, RetryPolicy::default(), &bar)
                .await
                .map_err(anyhow::Error::msg)?;
            println!(
                "{} objects uploaded ({:.1} MiB), {} already there, into {}",
                done.uploaded,
                done.bytes as f64 / 1048576.0,
                done.skipped,
                target.describe()
            );
        }
        Command::Dataset(DatasetCommand::Cleanup { run_id, store, concurrency }) => {
            let store = StorageConfig::from_url(&store).map_err(anyhow::Error::msg)?.open().await?;
            let deleted = seed::cleanup(store.as_ref(), &run_id, concurrency, RetryPolicy::default()).await.map_err(anyhow::Error::msg)?;
            println!("{deleted} objects of run {run_id} deleted from {}", store.describe());
        }
        Command::Run { spec, run_id, max_rate, watch } => {
            let spec = RunSpec::load(&spec)?;
            let Some(run_id) = run_id.or(spec.run_id.clone()) else {
                bail!("no run id: give --run-id or set run_id in the spec");
            };
            proto::check_name("run id", &run_id)?;
            let manifest = Manifest::load(&spec.manifest)?;
            let store = RedisStore::connect(&cli.services.redis_url, ns.clone()).await?;
            let broker = AmqpBroker::connect(&cli.services.amqp_url).await?;
            let _observed = cli.services.observe(&ns, &store, &run_id).await?;
            let options = EnqueueOptions { max_rate, ..Default::default() };
            if let Some(scaling) = spec.scaling.clone() {
                let stages = coordinator::stages::run_stages(
                    &broker,
                    &store,
                    &ns,
                    &run_id,
                    &spec,
                    &scaling,
                    &manifest,
                    &options,
                    std::time::Duration::from_millis(250),
                    print_stage,
                )
                .await;
                broker.close().await;
                let stages = stages?;
                let short = stages.iter().filter(|s| s.short).count();
                println!("run {run_id}: {} stages done, {short} started short", stages.len());
                return Ok(());
            }
            if let Some(sweep) = spec.load_sweep.clone() {
                let swept = coordinator::sweep::run_sweep(&broker, &store, &ns, &run_id, &spec, &sweep, &manifest, &options, Duration::from_millis(250), print_sweep).await;
                broker.close().await;
                let swept = swept?;
                let stages: usize = swept.values().map(Vec::len).sum();
                println!("run {run_id}: load sweep over, {stages} stages on {} platforms", swept.len());
                return Ok(());
            }
            // Publishing resumes where it stopped, so a lost broker or run store only delays it.
            let mut broker = broker;
            let mut attempt = 0;
            let report = loop {
                match enqueue::start_run(&broker, &store, &ns, &run_id, &spec, &manifest, &options).await {
                    Err(e) if e.is_transient() && attempt < RECONNECTS => {
                        attempt += 1;
                        broker = reconnect(&cli.services, broker, &e, attempt).await;
                    }
                    report => break report,
                }
            };
            broker.close().await;
            let report = report?;
            println!(
                "run {} {}: {} batches, published {} in {:.2} s ({:.0} jobs/s), {} already queued or done",
                report.run_id,
                if report.created { "created" } else { "resumed" },
                report.batches,
                report.published,
                report.elapsed.as_secs_f64(),
                report.published as f64 / report.elapsed.as_secs_f64().max(1e-9),
                report.skipped
            );
            if watch {
                follow(&store, &run_id, &cli.services.amqp_url, &ns).await?;
            }
        }
        Command::Schedule { spec, every, duration, run_id } => {
            let spec = RunSpec::load(&spec)?;
            if spec.scaling.is_some() || spec.load_sweep.is_some() {
                bail!("a schedule repeats rounds; a scaling or load-sweep spec's rounds are its stages: use `run` for it");
            }
            let Some(run_id) = run_id.or(spec.run_id.clone()) else {
                bail!("no run id: give --run-id or set run_id in the spec");
            };
            proto::check_name("run id", &run_id)?;
            let every = coordinator::schedule::parse_duration(&every).map_err(anyhow::Error::msg)?;
            let duration = coordinator::schedule::parse_duration(&duration).map_err(anyhow::Error::msg)?;
            let schedule = coordinator::schedule::Schedule::new(every, duration).map_err(anyhow::Error::msg)?;
            let manifest = Manifest::load(&spec.manifest)?;
            let store = RedisStore::connect(&cli.services.redis_url, ns.clone()).await?;
            let mut broker = AmqpBroker::connect(&cli.services.amqp_url).await?;
            let observed = cli.services.observe(&ns, &store, &run_id).await?;
            let count_round = |outcome: &str| {
                if let Some((registry, _)) = &observed {
                    registry.add("cloudbench_coordinator_rounds_total", "Rounds of the schedule handled, by outcome.", &[("outcome", outcome)], 1.0);
                }
            };
            println!("run {run_id}: {} rounds, one every {} s", schedule.rounds, every.as_secs_f64());
            // A week-long schedule outlives broker and Redis restarts: on a lost connection it waits,
            // reconnects and resumes the same schedule (rounds already handled are left as they are).
            let mut said = std::collections::BTreeMap::new();
            let mut attempt = 0;
            loop {
                let handled = said.len();
                let outcomes = coordinator::schedule::run_schedule(&broker, &store, &ns, &run_id, &spec, &manifest, &EnqueueOptions::default(), schedule, |o| {
                    use coordinator::schedule::RoundOutcome;
                    if said.contains_key(&o.round()) {
                        return;
                    }
                    said.insert(o.round(), o.clone());
                    match o {
                        RoundOutcome::Published { round, published } => {
                            count_round("published");
                            println!("round {round}: published {published}");
                        }
                        RoundOutcome::Skipped { round, reason } => {
                            count_round("skipped");
                            println!("round {round}: skipped: {reason}");
                        }
                        RoundOutcome::Handled { round } => println!("round {round}: handled before"),
                    }
                })
                .await;
                match outcomes {
                    Ok(_) => break,
                    Err(e) if e.is_transient() => {
                        attempt = if said.len() > handled { 0 } else { attempt + 1 };
                        broker = reconnect(&cli.services, broker, &e, attempt).await;
                    }
                    Err(e) => {
                        broker.close().await;
                        return Err(e.into());
                    }
                }
            }
            broker.close().await;
            let skipped = said.values().filter(|o| matches!(o, coordinator::schedule::RoundOutcome::Skipped { .. })).count();
            println!("run {run_id}: schedule over, {} rounds, {skipped} skipped", said.len());
        }
        Command::Status { run_id, json, watch } => {
            let store = RedisStore::connect(&cli.services.redis_url, ns.clone()).await?;
            if watch {
                let _observed = cli.services.observe(&ns, &store, &run_id).await?;
                follow(&store, &run_id, &cli.services.amqp_url, &ns).await?;
            } else {
                let view = view(&store, &run_id).await?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&view)?);
                } else {
                    print!("{}", status::render(&view, control::now_ms()));
                }
            }
        }
        Command::Cancel { run_id } => {
            let store = RedisStore::connect(&cli.services.redis_url, ns.clone()).await?;
            let cancelled = enqueue::cancel_run(&store, &run_id).await?;
            println!("run {run_id} cancelled: {cancelled} batches will not run; running batches finish");
        }
    }
    Ok(())
}

/// Attempts `run` makes to publish through a lost broker or run store before it gives up (about
/// ten minutes at the longest backoff).
const RECONNECTS: u32 = 64;

/// After `error` (transient), waits the backoff of `attempt` and returns a fresh broker connection
/// when the broker was lost (the old one when it was not, or when the broker is still away).
async fn reconnect(services: &Services, broker: AmqpBroker, error: &EnqueueError, attempt: u32) -> AmqpBroker {
    let pause = control::consume::backoff(attempt);
    eprintln!("warning: {error}; resuming in {:.1} s", pause.as_secs_f64());
    tokio::time::sleep(pause).await;
    if !matches!(error, EnqueueError::Broker(_)) {
        return broker;
    }
    match AmqpBroker::connect(&services.amqp_url).await {
        Ok(fresh) => {
            broker.close().await;
            fresh
        }
        Err(e) => {
            eprintln!("warning: {e}");
            broker
        }
    }
}

/// One line per stage event of a scaling run.
fn print_stage(event: coordinator::stages::StageEvent) {
    use coordinator::stages::StageEvent;
    match event {
        StageEvent::Waiting { stage, target } => println!("stage {stage}: waiting for {target} workers per platform"),
        StageEvent::Started(r) => {
            let live: Vec<String> = r.live.iter().map(|(p, n)| format!("{p}={n}")).collect();
            println!(
                "stage {}: started with {} live (asked {} per platform){}; published {}",
                r.stage,
                live.join(" "),
                r.target,
                if r.short { ", started short" } else { "" },
                r.published
            );
        }
        StageEvent::Finished { stage, took } => println!("stage {stage}: finished in {:.1} s", took.as_secs_f64()),
    }
}

/// One line per stage event of a load sweep.
fn print_sweep(event: coordinator::sweep::SweepEvent) {
    use coordinator::sweep::SweepEvent;
    match event {
        SweepEvent::Started { platform, stage, load, resumed } => {
            println!("{platform} stage {stage}: {load}{}", if resumed { " (published before; waiting for it)" } else { "" });
        }
        SweepEvent::Finished { platform, stage, result, met } => {
            let verdict = match met {
                Some(true) => ": target met",
                Some(false) => ": target missed",
                None => "",
            };
            println!(
                "{platform} stage {stage}: p99 {:.1} ms, {} of {} requests failed{verdict}",
                result.p99_ms, result.failed, result.requests
            );
        }
        SweepEvent::Resting { platform, stage, seconds } => println!("{platform} stage {stage}: resting {seconds:.1} s first (idle_seconds)"),
        SweepEvent::Over { platform, stages } => println!("{platform}: sweep over after {stages} stages"),
    }
}

async fn view(store: &dyn RunStore, run_id: &str) -> anyhow::Result<StatusView> {
    let Some(run) = store.progress(run_id).await? else { bail!("run {run_id} not found") };
    let workers = status::workers_by_platform(&store.heartbeats().await?);
    Ok(StatusView::new(run, workers, control::now_ms()))
}

/// Shows live progress until the run completes: bars on a terminal, a table every 10 s otherwise.
/// Jobs the broker dead-lettered at their delivery limit (poison jobs that kept killing workers) fail
/// their batches on the way, checked every few seconds.
async fn follow(store: &dyn RunStore, run_id: &str, amqp_url: &str, ns: &Namespace) -> anyhow::Result<()> {
    let mut dead_letters = control::dead::DeadLetterWatch::new(amqp_url, ns, run_id);
    let tty = std::io::stderr().is_terminal();
    let bars = indicatif::MultiProgress::new();
    let mut by_platform = std::collections::BTreeMap::new();
    let mut last_table = std::time::Instant::now() - Duration::from_secs(60);
    let mut recent = status::RecentPace::default();
    loop {
        dead_letters.tick(store).await;
        let mut view = view(store, run_id).await?;
        view.pace.extend(recent.update(control::now_ms(), &view.run.platforms));
        if tty {
            for (platform, counts) in &view.run.platforms {
                let bar = by_platform.entry(platform.clone()).or_insert_with(|| {
                    let total: u64 = counts.values().sum();
                    bars.add(progress_bar(platform, total))
                });
                let get = |s| counts.get(&s).copied().unwrap_or(0);
                use control::state::BatchState::*;
                bar.set_position(get(Done) + get(Failed) + get(Cancelled));
                let w = view.workers.get(platform).cloned().unwrap_or_default();
                let pace = view.pace.get(platform).map_or(String::new(), |p| {
                    format!(" · {:.1}/min eta {}", p.batches_per_min, p.eta_secs.map_or("-".into(), |s| format!("{:.0}s", s)))
                });
                bar.set_message(format!("running {} failed {} · workers {}/{} · errors {}{pace}", get(Running), get(Failed), w.busy, w.live, w.errors));
            }
        } else if last_table.elapsed() >= Duration::from_secs(10) || view.complete {
            print!("{}", status::render(&view, control::now_ms()));
            last_table = std::time::Instant::now();
        }
        if view.complete {
            for bar in by_platform.values() {
                bar.finish();
            }
            if tty {
                print!("{}", status::render(&view, control::now_ms()));
            }
            return Ok(());
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}

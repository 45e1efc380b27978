//! The fault-injection suite: one benchmark run through the real binaries (coordinator, two workers,
//! collector) and services, with one fault injected in the middle of it, and what was collected
//! counted against what was planned. `tests/tests/faults.rs` runs one trial of each fault;
//! `scripts/faults.sh` runs many and prints the table the README carries.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use control::{Broker, Outgoing, RunStore};
use rand::{Rng, SeedableRng};

use super::*;

/// A fault, injected while a run is in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// A worker aborts (as under `SIGKILL`) at a crash point of a batch (see `worker::crash`).
    WorkerCrash(&'static str),
    /// Workers are `SIGKILL`ed at random moments, four times, and started again.
    WorkerKills,
    /// The RabbitMQ node stops and starts again.
    BrokerRestart,
    /// The Redis server is killed and starts again (from its append-only file).
    RedisRestart,
    /// The coordinator is `SIGKILL`ed while it publishes, then run again.
    CoordinatorKill,
    /// The collector is `SIGKILL`ed while it stores, then started again.
    CollectorKill,
    /// The collector's disk is full (its file-size limit reached) until space returns.
    DiskFull,
    /// Undecodable messages on the job and metrics queues while the run flows.
    Malformed,
    /// The network between the workers and S3 delays, resets or stalls connections.
    Network,
    /// One job kills every worker that takes it, until the broker dead-letters it.
    Poison,
}

impl Fault {
    pub fn all() -> Vec<Fault> {
        let mut all: Vec<Fault> = worker::crash::POINTS.iter().map(|p| Fault::WorkerCrash(p)).collect();
        all.extend([Fault::WorkerKills, Fault::BrokerRestart, Fault::RedisRestart, Fault::CoordinatorKill, Fault::CollectorKill, Fault::DiskFull, Fault::Malformed, Fault::Network, Fault::Poison]);
        all
    }

    pub fn name(&self) -> String {
        match self {
            Fault::WorkerCrash(point) => format!("worker killed at `{point}`"),
            Fault::WorkerKills => "workers SIGKILLed at random, 4 times".into(),
            Fault::BrokerRestart => "RabbitMQ restarted mid-run".into(),
            Fault::RedisRestart => "Redis restarted mid-run".into(),
            Fault::CoordinatorKill => "coordinator SIGKILLed while publishing".into(),
            Fault::CollectorKill => "collector SIGKILLed while storing".into(),
            Fault::DiskFull => "collector's disk full, then space returns".into(),
            Fault::Malformed => "undecodable jobs and metrics".into(),
            Fault::Network => "S3 connections delayed, reset or stalled".into(),
            Fault::Poison => "a poison job kills every worker that takes it".into(),
        }
    }
}

/// What a trial planned and what the collector ended up with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub expected: u64,
    /// Records in the metrics store.
    pub collected: u64,
    /// Distinct job keys among them.
    pub distinct: u64,
    /// Messages in the namespace's dead-letter queue at the end.
    pub dead_lettered: u64,
    /// Worker processes that died (crash point or kill) and were started again.
    pub restarts: u64,
    /// Requests retried, and failed requests, inside the collected batches.
    pub retries: u64,
    pub errors: u64,
}

impl Tally {
    pub fn lost(&self) -> u64 {
        self.expected.saturating_sub(self.distinct)
    }

    pub fn duplicated(&self) -> u64 {
        self.collected - self.distinct
    }
}

/// One trial's world: its dataset and spec, its namespace, the services it talks to.
struct Trial {
    dir: tempfile::TempDir,
    ns: Namespace,
    run_id: String,
    batches: u64,
    services: Vec<(&'static str, String)>,
    restarts: std::cell::Cell<u64>,
    /// The workers' storage URL (with a `worker.toml` beside it) instead of local folders.
    storage: std::cell::OnceCell<String>,
    /// A crash point every worker gets, restarted ones too (a poison job).
    poison: std::cell::OnceCell<String>,
}

impl Trial {
    fn new(tag: &str, images: usize, batch_size: usize, services: Vec<(&'static str, String)>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let run_id = unique(tag);
        dataset(&dir.path().join("data"), images, 4_000);
        let limit = if tag == "poison" { 4 } else { 10 };
        let spec = format!("run_id = \"{run_id}\"\nmanifest = \"data/manifest.json\"\nbatch_size = {batch_size}\ndelivery_limit = {limit}\n[[platform]]\nname = \"local\"\n");
        std::fs::write(dir.path().join("run.toml"), spec).unwrap();
        Self { ns: namespace(tag), run_id, batches: images.div_ceil(batch_size) as u64, services, dir, restarts: Default::default(), storage: Default::default(), poison: Default::default() }
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    fn worker(&self, i: usize, crash_at: Option<String>) -> Child {
        let mut cmd = match self.storage.get() {
            None => local_worker(&self.ns, &self.path("data"), &self.path(&format!("bucket{i}"))),
            Some(url) => {
                let mut cmd = Command::new(bin("worker"));
                cmd.args(["--namespace", self.ns.as_str(), "--platform", "local", "--heartbeat-secs", "1", "--storage", url, "--config"])
                    .arg(self.path("worker.toml"))
                    .arg("--dataset-dir")
                    .arg(self.path("data"))
                    .stderr(Stdio::null());
                with_cloud_env(&mut cmd);
                cmd
            }
        };
        cmd.envs(self.services.clone()).env_remove("CLOUDBENCH_CRASH_AT");
        if let Some(at) = crash_at.or_else(|| self.poison.get().cloned()) {
            cmd.env("CLOUDBENCH_CRASH_AT", at);
        }
        Child(cmd.spawn().unwrap())
    }

    fn collector(&self) -> Command {
        let mut cmd = collector_command(&self.ns, &self.run_id, &self.path("store"));
        cmd.envs(self.services.clone());
        cmd
    }

    /// `coordinator run`, publishing at most `rate` jobs a second so that the run lasts a while.
    fn coordinator(&self, rate: u32) -> Command {
        let mut cmd = Command::new(bin("coordinator"));
        cmd.args(["--namespace", self.ns.as_str(), "run", "--max-rate", &rate.to_string()])
            .arg(self.path("run.toml"))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        with_cloud_env(&mut cmd).envs(self.services.clone());
        cmd
    }

    fn stored(&self) -> u64 {
        analyzer::store::MetricsStore::open(self.path("store")).and_then(|s| s.read(&self.run_id)).map_or(0, |m| m.len() as u64)
    }

    async fn wait_stored(&self, at_least: u64) {
        wait_for(&format!("{at_least} batches stored"), WAIT, || {
            let n = self.stored();
            async move { (n >= at_least).then_some(()) }
        })
        .await;
    }

    async fn tally(&self) -> Tally {
        let metrics = analyzer::store::MetricsStore::open(self.path("store")).unwrap().read(&self.run_id).unwrap();
        let distinct: std::collections::BTreeSet<&str> = metrics.iter().map(|m| m.job_key.as_str()).collect();
        let broker = AmqpBroker::connect(&self.services.iter().find(|(k, _)| *k == "AMQP_URL").unwrap().1).await.unwrap();
        let dead_lettered = broker.depth(&self.ns.dead_letter_queue()).await.unwrap();
        broker.delete(&self.ns, &["local".into()]).await.unwrap();
        broker.close().await;
        Tally {
            expected: self.batches,
            collected: metrics.len() as u64,
            distinct: distinct.len() as u64,
            dead_lettered,
            restarts: self.restarts.get(),
            retries: metrics.iter().flat_map(|m| &m.retries).map(|c| c.count).sum(),
            errors: metrics.iter().flat_map(|m| &m.errors).map(|c| c.count).sum(),
        }
    }
}

/// A run in flight: its collector (`--until-complete`), two workers and `coordinator run`.
struct Flight {
    collector: Child,
    workers: Vec<Child>,
    coordinator: Child,
}

impl Trial {
    /// Starts the collector, two workers (the first with `crash_at`) and the coordinator publishing at
    /// most `rate` jobs a second.
    fn launch(&self, rate: u32, crash_at: Option<String>) -> Flight {
        self.launch_with(self.collector(), rate, crash_at)
    }

    /// [`Trial::launch`] with a collector command of the trial's own making.
    fn launch_with(&self, mut collector: Command, rate: u32, crash_at: Option<String>) -> Flight {
        let collector = Child(collector.spawn().unwrap());
        let workers = vec![self.worker(0, crash_at), self.worker(1, None)];
        Flight { collector, workers, coordinator: Child(self.coordinator(rate).spawn().unwrap()) }
    }

    /// Waits for the run to complete, restarting workers that die meanwhile, and checks that the
    /// coordinator succeeded.
    async fn land(&self, flight: &mut Flight) {
        finish(self, &mut flight.collector, &mut flight.workers).await;
        assert!(flight.coordinator.0.wait().unwrap().success(), "the coordinator published the whole run");
    }
}

/// Restarts every worker that has exited, without its crash point.
fn supervise(trial: &Trial, workers: &mut [Child]) {
    for (i, w) in workers.iter_mut().enumerate() {
        if w.0.try_wait().unwrap().is_some() {
            *w = trial.worker(i, None);
            trial.restarts.set(trial.restarts.get() + 1);
        }
    }
}

/// Waits for a collector started with `--until-complete`, restarting workers that die meanwhile.
async fn finish(trial: &Trial, collector: &mut Child, workers: &mut [Child]) {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        supervise(trial, workers);
        if let Some(status) = collector.0.try_wait().unwrap() {
            assert!(status.success(), "the collector failed: {status}");
            return;
        }
        assert!(Instant::now() < deadline, "the run did not complete within 180 s: {} of {} stored", trial.stored(), trial.batches);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn shared_services() -> Vec<(&'static str, String)> {
    vec![("AMQP_URL", amqp_url()), ("REDIS_URL", redis_url())]
}

/// Runs one trial of `fault`; `seed` picks its random moments.
pub async fn trial(fault: Fault, seed: u64) -> Tally {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    match fault {
        Fault::WorkerCrash(point) => {
            let trial = Trial::new("crash", 96, 2, shared_services());
            let mut run = trial.launch(24, Some(format!("{point}:{}", rng.random_range(1..=4))));
            trial.land(&mut run).await;
            trial.tally().await
        }
        Fault::WorkerKills => {
            let trial = Trial::new("kills", 96, 2, shared_services());
            let mut run = trial.launch(24, None);
            for _ in 0..4 {
                tokio::time::sleep(Duration::from_millis(rng.random_range(150..500))).await;
                let victim = &mut run.workers[rng.random_range(0..2)];
                let _ = victim.0.kill();
                let _ = victim.0.wait();
                supervise(&trial, &mut run.workers);
            }
            trial.land(&mut run).await;
            trial.tally().await
        }
        Fault::BrokerRestart => {
            let mut rabbit = PrivateRabbit::start();
            let trial = Trial::new("broker", 96, 2, vec![("AMQP_URL", rabbit.url()), ("REDIS_URL", redis_url())]);
            let mut run = trial.launch(12, None);
            trial.wait_stored(rng.random_range(4..12)).await;
            rabbit.restart();
            trial.land(&mut run).await;
            trial.tally().await
        }
        Fault::RedisRestart => {
            let mut redis = PrivateRedis::start();
            let trial = Trial::new("redis", 96, 2, vec![("AMQP_URL", amqp_url()), ("REDIS_URL", redis.url())]);
            let mut run = trial.launch(24, None);
            trial.wait_stored(rng.random_range(4..12)).await;
            redis.kill();
            tokio::time::sleep(Duration::from_millis(rng.random_range(200..1500))).await;
            redis.restart();
            trial.land(&mut run).await;
            trial.tally().await
        }
        Fault::CoordinatorKill => {
            let trial = Trial::new("coordinator", 300, 1, shared_services());
            let mut run = trial.launch(100, None);
            tokio::time::sleep(Duration::from_millis(rng.random_range(300..2000))).await;
            let _ = run.coordinator.0.kill();
            let _ = run.coordinator.0.wait();
            run.coordinator = Child(trial.coordinator(1000).spawn().unwrap());
            trial.land(&mut run).await;
            trial.tally().await
        }
        Fault::CollectorKill => {
            let trial = Trial::new("collector", 96, 2, shared_services());
            let mut run = trial.launch(24, None);
            trial.wait_stored(rng.random_range(4..20)).await;
            let _ = run.collector.0.kill();
            let _ = run.collector.0.wait();
            run.collector = Child(trial.collector().spawn().unwrap());
            trial.land(&mut run).await;
            trial.tally().await
        }
        Fault::DiskFull => {
            let trial = Trial::new("disk", 96, 2, shared_services());
            // The collector may write this many bytes (a few records) before writes fail with EFBIG,
            // as on a full disk; raising the limit is the space coming back.
            let limit = rng.random_range(1_000..4_000);
            let mut cmd = trial.collector();
            unsafe {
                std::os::unix::process::CommandExt::pre_exec(&mut cmd, move || {
                    libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
                    let rl = libc::rlimit { rlim_cur: limit, rlim_max: libc::RLIM_INFINITY };
                    if libc::setrlimit(libc::RLIMIT_FSIZE, &rl) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
            let mut run = trial.launch_with(cmd, 48, None);
            assert!(run.coordinator.0.wait().unwrap().success());
            // Every batch done by the workers, fewer stored: the collector holds what it cannot write.
            let done = wait_for("every batch done while the disk is full", WAIT, || async {
                let state = RedisStore::connect(&redis_url(), trial.ns.clone()).await.ok()?;
                let progress = state.progress(&trial.run_id).await.ok().flatten()?;
                (progress.count(control::state::BatchState::Done) == trial.batches).then_some(progress)
            })
            .await;
            assert!(done.is_complete());
            tokio::time::sleep(Duration::from_millis(1500)).await;
            let stuck = trial.stored();
            assert!(stuck < trial.batches, "the limit stopped the collector: {stuck} of {} stored", trial.batches);
            assert!(run.collector.0.try_wait().unwrap().is_none(), "a full disk does not end the collector");
            let rl = libc::rlimit { rlim_cur: libc::RLIM_INFINITY, rlim_max: libc::RLIM_INFINITY };
            assert_eq!(unsafe { libc::prlimit(run.collector.0.id() as libc::pid_t, libc::RLIMIT_FSIZE, &rl, std::ptr::null_mut()) }, 0);
            trial.land(&mut run).await;
            trial.tally().await
        }
        Fault::Network => {
            let trial = Trial::new("network", 96, 4, shared_services());
            let bucket = store_name("chaos");
            storage::StorageConfig::S3(s3_test_config(&bucket)).create().await.unwrap();
            let upstream: std::net::SocketAddr = s3_endpoint().trim_start_matches("http://").parse().unwrap();
            let proxy = ChaosProxy::start(upstream, seed).await;
            // Uploads go to S3 through the proxy; short attempt timeouts so that a stalled connection
            // costs a second, and enough attempts to get through a bad patch.
            let storage = format!("s3://{bucket}/?endpoint=http://127.0.0.1:{}&path_style=true&region=us-east-1", proxy.port);
            std::fs::write(trial.path("worker.toml"), "[retry]\nmax_attempts = 10\nbase_delay = 20\nmax_delay = 400\nattempt_timeout = 1000\n").unwrap();
            trial.storage.set(storage).unwrap();
            let mut run = trial.launch(24, None);
            trial.land(&mut run).await;
            let tally = trial.tally().await;
            let seen = proxy.seen();
            eprintln!("proxy connections passed/delayed/reset/stalled: {seen:?}; {tally:?}");
            assert!(seen.iter().skip(1).sum::<u64>() > 0, "the proxy hurt some connections: {seen:?}");
            tally
        }
        Fault::Poison => {
            let trial = Trial::new("poison", 96, 2, shared_services());
            let poison = rng.random_range(0..trial.batches as u32);
            trial.poison.set(format!("claimed@{poison}")).unwrap();
            let mut run = trial.launch(48, None);
            trial.land(&mut run).await;
            let state = RedisStore::connect(&redis_url(), trial.ns.clone()).await.unwrap();
            let progress = state.progress(&trial.run_id).await.unwrap().unwrap();
            assert_eq!(progress.count(control::state::BatchState::Failed), 1, "the poison batch failed, the others are done");
            let mut tally = trial.tally().await;
            tally.expected -= 1;
            tally
        }
        Fault::Malformed => {
            let trial = Trial::new("malformed", 96, 2, shared_services());
            let mut run = trial.launch(24, None);
            trial.wait_stored(rng.random_range(2..10)).await;
            let publisher = broker().await;
            let mut garbage = |i: usize| Outgoing { id: format!("garbage-{i}"), kind: "x", payload: (0..rng.random_range(0..64)).map(|b| (b * 37 + i) as u8).collect() };
            let jobs: Vec<Outgoing> = (0..5).map(&mut garbage).collect();
            let metrics: Vec<Outgoing> = (5..8).map(&mut garbage).collect();
            publisher.publish(&trial.ns.job_queue("local"), &jobs).await.unwrap();
            publisher.publish(&trial.ns.metrics_queue(), &metrics).await.unwrap();
            publisher.close().await;
            trial.land(&mut run).await;
            wait_for("8 messages dead-lettered", WAIT, || async {
                let broker = broker().await;
                let depth = broker.depth(&trial.ns.dead_letter_queue()).await.ok();
                broker.close().await;
                depth.filter(|d| *d >= 8)
            })
            .await;
            trial.tally().await
        }
    }
}

/// A TCP proxy in front of `upstream` that treats each connection one way, at random: passes it
/// through, delays it, resets it after some bytes (RST, as a dropped route or a crashed middlebox
/// does), or stalls it (accepts and never answers).
pub struct ChaosProxy {
    pub port: u16,
    /// Connections passed, delayed, reset and stalled.
    counts: Arc<[std::sync::atomic::AtomicU64; 4]>,
    task: tokio::task::JoinHandle<()>,
}

impl ChaosProxy {
    pub async fn start(upstream: std::net::SocketAddr, seed: u64) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let counts: Arc<[std::sync::atomic::AtomicU64; 4]> = Arc::new(Default::default());
        let rng = Arc::new(std::sync::Mutex::new(rand::rngs::StdRng::seed_from_u64(seed)));
        let tally = counts.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (mode, pause, cut) = {
                    let mut rng = rng.lock().unwrap();
                    let roll: u32 = rng.random_range(0..100);
                    let mode = match roll {
                        0..60 => 0,
                        60..75 => 1,
                        75..90 => 2,
                        _ => 3,
                    };
                    (mode, Duration::from_millis(rng.random_range(50..400)), rng.random_range(64..16_384usize))
                };
                tally[mode].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tokio::spawn(async move {
                    match mode {
                        3 => {
                            // Stall: read and drop whatever comes, answer nothing, until the client gives up.
                            let mut client = client;
                            let mut sink = [0u8; 16_384];
                            while let Ok(n) = tokio::io::AsyncReadExt::read(&mut client, &mut sink).await {
                                if n == 0 {
                                    break;
                                }
                            }
                        }
                        _ => {
                            if mode == 1 {
                                tokio::time::sleep(pause).await;
                            }
                            let Ok(server) = tokio::net::TcpStream::connect(upstream).await else { return };
                            relay(client, server, if mode == 2 { Some(cut) } else { None }).await;
                        }
                    }
                });
            }
        });
        Self { port, counts, task }
    }

    /// Connections passed, delayed, reset and stalled so far.
    pub fn seen(&self) -> [u64; 4] {
        std::array::from_fn(|i| self.counts[i].load(std::sync::atomic::Ordering::Relaxed))
    }
}

impl Drop for ChaosProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Copies both ways; with `cut`, resets both sides once that many bytes went either way.
async fn relay(client: tokio::net::TcpStream, server: tokio::net::TcpStream, cut: Option<usize>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Some(cut) = cut else {
        let (mut client, mut server) = (client, server);
        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
        return;
    };
    // A zero linger makes the close a reset; it does not block (the warning is about longer ones).
    #[allow(deprecated)]
    let _ = (client.set_linger(Some(Duration::ZERO)), server.set_linger(Some(Duration::ZERO)));
    let (cr, cw) = client.into_split();
    let (sr, sw) = server.into_split();
    let budget = Arc::new(std::sync::atomic::AtomicUsize::new(cut));
    let pump = |mut from: tokio::net::tcp::OwnedReadHalf, mut to: tokio::net::tcp::OwnedWriteHalf, budget: Arc<std::sync::atomic::AtomicUsize>| async move {
        let mut buf = [0u8; 4096];
        loop {
            let Ok(n) = from.read(&mut buf).await else { return };
            if n == 0 {
                return;
            }
            let left = budget.fetch_sub(n.min(budget.load(std::sync::atomic::Ordering::Relaxed)), std::sync::atomic::Ordering::Relaxed);
            let n = n.min(left);
            if n == 0 || to.write_all(&buf[..n]).await.is_err() || left <= n {
                return;
            }
        }
    };
    // Whichever direction runs out first ends both: dropping the halves with linger 0 sends RST.
    tokio::select! {
        _ = pump(cr, sw, budget.clone()) => {}
        _ = pump(sr, cw, budget) => {}
    }
}

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
}

impl Fault {
    pub fn all() -> Vec<Fault> {
        let mut all: Vec<Fault> = worker::crash::POINTS.iter().map(|p| Fault::WorkerCrash(p)).collect();
        all.extend([Fault::WorkerKills, Fault::BrokerRestart, Fault::RedisRestart, Fault::CoordinatorKill, Fault::CollectorKill, Fault::DiskFull, Fault::Malformed]);
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
}

impl Trial {
    fn new(tag: &str, images: usize, batch_size: usize, services: Vec<(&'static str, String)>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let run_id = unique(tag);
        dataset(&dir.path().join("data"), images, 4_000);
        let spec = format!("run_id = \"{run_id}\"\nmanifest = \"data/manifest.json\"\nbatch_size = {batch_size}\ndelivery_limit = 10\n[[platform]]\nname = \"local\"\n");
        std::fs::write(dir.path().join("run.toml"), spec).unwrap();
        Self { ns: namespace(tag), run_id, batches: images.div_ceil(batch_size) as u64, services, dir, restarts: Default::default() }
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    fn worker(&self, i: usize, crash_at: Option<String>) -> Child {
        let mut cmd = local_worker(&self.ns, &self.path("data"), &self.path(&format!("bucket{i}")));
        cmd.envs(self.services.clone()).env_remove("CLOUDBENCH_CRASH_AT");
        if let Some(at) = crash_at {
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
        Tally { expected: self.batches, collected: metrics.len() as u64, distinct: distinct.len() as u64, dead_lettered, restarts: self.restarts.get() }
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
            let mut collector = Child(trial.collector().spawn().unwrap());
            let mut workers = vec![trial.worker(0, Some(format!("{point}:{}", rng.random_range(1..=4)))), trial.worker(1, None)];
            let mut coordinator = Child(trial.coordinator(24).spawn().unwrap());
            finish(&trial, &mut collector, &mut workers).await;
            assert!(coordinator.0.wait().unwrap().success());
            trial.tally().await
        }
        Fault::WorkerKills => {
            let trial = Trial::new("kills", 96, 2, shared_services());
            let mut collector = Child(trial.collector().spawn().unwrap());
            let mut workers = vec![trial.worker(0, None), trial.worker(1, None)];
            let mut coordinator = Child(trial.coordinator(24).spawn().unwrap());
            for _ in 0..4 {
                tokio::time::sleep(Duration::from_millis(rng.random_range(150..500))).await;
                let victim = rng.random_range(0..workers.len());
                let _ = workers[victim].0.kill();
                let _ = workers[victim].0.wait();
                supervise(&trial, &mut workers);
            }
            finish(&trial, &mut collector, &mut workers).await;
            assert!(coordinator.0.wait().unwrap().success());
            trial.tally().await
        }
        Fault::BrokerRestart => {
            let mut rabbit = PrivateRabbit::start();
            let trial = Trial::new("broker", 96, 2, vec![("AMQP_URL", rabbit.url()), ("REDIS_URL", redis_url())]);
            let mut collector = Child(trial.collector().spawn().unwrap());
            let mut workers = vec![trial.worker(0, None), trial.worker(1, None)];
            let mut coordinator = Child(trial.coordinator(12).spawn().unwrap());
            trial.wait_stored(rng.random_range(4..12)).await;
            rabbit.restart();
            finish(&trial, &mut collector, &mut workers).await;
            assert!(coordinator.0.wait().unwrap().success(), "the coordinator resumes publishing after the restart");
            trial.tally().await
        }
        Fault::RedisRestart => {
            let mut redis = PrivateRedis::start();
            let trial = Trial::new("redis", 96, 2, vec![("AMQP_URL", amqp_url()), ("REDIS_URL", redis.url())]);
            let mut collector = Child(trial.collector().spawn().unwrap());
            let mut workers = vec![trial.worker(0, None), trial.worker(1, None)];
            let mut coordinator = Child(trial.coordinator(24).spawn().unwrap());
            trial.wait_stored(rng.random_range(4..12)).await;
            redis.kill();
            tokio::time::sleep(Duration::from_millis(rng.random_range(200..1500))).await;
            redis.restart();
            finish(&trial, &mut collector, &mut workers).await;
            assert!(coordinator.0.wait().unwrap().success());
            trial.tally().await
        }
        Fault::CoordinatorKill => {
            let trial = Trial::new("coordinator", 300, 1, shared_services());
            let mut collector = Child(trial.collector().spawn().unwrap());
            let mut workers = vec![trial.worker(0, None), trial.worker(1, None)];
            let mut first = Child(trial.coordinator(100).spawn().unwrap());
            tokio::time::sleep(Duration::from_millis(rng.random_range(300..2000))).await;
            let _ = first.0.kill();
            let _ = first.0.wait();
            let rerun = trial.coordinator(1000).status().unwrap();
            assert!(rerun.success());
            finish(&trial, &mut collector, &mut workers).await;
            trial.tally().await
        }
        Fault::CollectorKill => {
            let trial = Trial::new("collector", 96, 2, shared_services());
            let mut collector = Child(trial.collector().spawn().unwrap());
            let mut workers = vec![trial.worker(0, None), trial.worker(1, None)];
            let mut coordinator = Child(trial.coordinator(24).spawn().unwrap());
            trial.wait_stored(rng.random_range(4..20)).await;
            let _ = collector.0.kill();
            let _ = collector.0.wait();
            let mut collector = Child(trial.collector().spawn().unwrap());
            finish(&trial, &mut collector, &mut workers).await;
            assert!(coordinator.0.wait().unwrap().success());
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
            let mut collector = Child(cmd.spawn().unwrap());
            let mut workers = vec![trial.worker(0, None), trial.worker(1, None)];
            let mut coordinator = Child(trial.coordinator(48).spawn().unwrap());
            assert!(coordinator.0.wait().unwrap().success());
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
            assert!(collector.0.try_wait().unwrap().is_none(), "a full disk does not end the collector");
            let rl = libc::rlimit { rlim_cur: libc::RLIM_INFINITY, rlim_max: libc::RLIM_INFINITY };
            assert_eq!(unsafe { libc::prlimit(collector.0.id() as libc::pid_t, libc::RLIMIT_FSIZE, &rl, std::ptr::null_mut()) }, 0);
            finish(&trial, &mut collector, &mut workers).await;
            trial.tally().await
        }
        Fault::Malformed => {
            let trial = Trial::new("malformed", 96, 2, shared_services());
            let mut collector = Child(trial.collector().spawn().unwrap());
            let mut workers = vec![trial.worker(0, None), trial.worker(1, None)];
            let mut coordinator = Child(trial.coordinator(24).spawn().unwrap());
            trial.wait_stored(rng.random_range(2..10)).await;
            let publisher = broker().await;
            let mut garbage = |i: usize| Outgoing { id: format!("garbage-{i}"), kind: "x", payload: (0..rng.random_range(0..64)).map(|b| (b * 37 + i) as u8).collect() };
            let jobs: Vec<Outgoing> = (0..5).map(&mut garbage).collect();
            let metrics: Vec<Outgoing> = (5..8).map(&mut garbage).collect();
            publisher.publish(&trial.ns.job_queue("local"), &jobs).await.unwrap();
            publisher.publish(&trial.ns.metrics_queue(), &metrics).await.unwrap();
            publisher.close().await;
            finish(&trial, &mut collector, &mut workers).await;
            assert!(coordinator.0.wait().unwrap().success());
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

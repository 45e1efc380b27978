//! Failures the pipeline must survive: a platform that keeps failing, a SIGTERM in the middle of a
//! batch, Redis restarting, the broker dropping connections.

mod common;

use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use analyzer::store::MetricsStore;
use common::*;
use control::state::BatchState;
use control::{Broker, RunStore};
use coordinator::enqueue::{self, EnqueueOptions};
use coordinator::spec::RunSpec;

const WAIT: Duration = Duration::from_secs(90);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_keeps_failing_is_dead_lettered_at_its_limit_and_marked_failed() {
    let dir = tempfile::tempdir().unwrap();
    let ns = namespace("failing");
    let run_id = unique("run");
    let data = dir.path().join("data");
    let manifest = dataset(&data, 2, 100);
    let spec = RunSpec::load(&spec(dir.path(), &data, 2, &["aws"])).unwrap(); // delivery_limit = 3
    let broker = broker().await;
    let state: Arc<dyn RunStore> = Arc::new(state(&ns).await);
    enqueue::start_run(&broker, state.as_ref(), &ns, &run_id, &spec, &manifest, &EnqueueOptions::default()).await.unwrap();
    let bucket = dir.path().join("bucket");
    let (worker, stop) = spawn_worker(&ns, "aws", &data, &bucket, state.clone());
    std::fs::remove_dir(&bucket).unwrap(); // the bucket disappears: every attempt fails
    let progress = wait_for("the batch to be marked failed", WAIT, || async {
        let p = state.progress(&run_id).await.unwrap()?;
        (p.count(BatchState::Failed) == 1).then_some(p)
    })
    .await;
    assert!(progress.is_complete());
    wait_for("the job in the dead-letter queue", WAIT, || async {
        (broker.depth(&ns.dead_letter_queue()).await.unwrap() == 1).then_some(())
    })
    .await;
    stop.send(true).unwrap();
    let stats = tokio::time::timeout(WAIT, worker).await.unwrap().unwrap();
    assert_eq!((stats.failed, stats.returned, stats.done), (1, 2, 0), "returned twice, given up on the third delivery");

    // Running the run again retries the failed batch, once the bucket is back.
    std::fs::create_dir(&bucket).unwrap();
    let again = enqueue::start_run(&broker, state.as_ref(), &ns, &run_id, &spec, &manifest, &EnqueueOptions::default()).await.unwrap();
    assert_eq!(again.published, 1);
    let (worker, stop) = spawn_worker(&ns, "aws", &data, &bucket, state.clone());
    wait_for("the retried batch to be done", WAIT, || async {
        (state.progress(&run_id).await.unwrap()?.count(BatchState::Done) == 1).then_some(())
    })
    .await;
    stop.send(true).unwrap();
    tokio::time::timeout(WAIT, worker).await.unwrap().unwrap();
    broker.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_the_batch_in_hand_finish_then_the_worker_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let ns = namespace("sigterm");
    let run_id = unique("run");
    let data = dir.path().join("data");
    let manifest = dataset(&data, 300, 64 * 1024);
    let spec = RunSpec::load(&spec(dir.path(), &data, 150, &["aws"])).unwrap();
    let broker = broker().await;
    let state: Arc<dyn RunStore> = Arc::new(state(&ns).await);
    enqueue::start_run(&broker, state.as_ref(), &ns, &run_id, &spec, &manifest, &EnqueueOptions::default()).await.unwrap();
    let store = Arc::new(Mutex::new(MetricsStore::open(dir.path().join("store")).unwrap()));
    let (collector, stop_collector) = spawn_collector(&ns, store.clone());
    std::fs::create_dir(dir.path().join("bucket")).unwrap();
    let worker = Command::new(bin("worker"))
        .args(["--platform", "aws", "--namespace", ns.as_str(), "--concurrency", "1", "--durable", "--grace-secs", "60"])
        .arg("--dataset-dir")
        .arg(&data)
        .arg("--storage-dir")
        .arg(dir.path().join("bucket"))
        .env("AMQP_URL", amqp_url())
        .env("REDIS_URL", redis_url())
        .env("RUST_LOG", "warn")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut worker = Child(worker);
    wait_for("the worker to start a batch", WAIT, || async {
        (state.progress(&run_id).await.unwrap()?.count(BatchState::Running) == 1).then_some(())
    })
    .await;
    let term = Command::new("kill").args(["-TERM", &worker.0.id().to_string()]).status().unwrap();
    assert!(term.success());
    let exited = wait_for("the worker to exit", WAIT, || {
        let status = worker.0.try_wait().unwrap();
        async move { status }
    })
    .await;
    assert!(exited.success(), "clean exit after SIGTERM");
    let mut stderr = String::new();
    std::io::Read::read_to_string(worker.0.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(stderr.contains("worker stopped: 1 done"), "finished the batch in hand, took no other: {stderr}");
    let progress = state.progress(&run_id).await.unwrap().unwrap();
    assert_eq!((progress.count(BatchState::Done), progress.count(BatchState::Queued)), (1, 1));
    wait_for("the finished batch's metrics", WAIT, || async { (store.lock().unwrap().count(&run_id).unwrap() == 1).then_some(()) }).await;
    stop_collector.send(true).unwrap();
    tokio::time::timeout(WAIT, collector).await.unwrap().unwrap();
    broker.close().await;
}

/// A Redis server of this test's own, with an append-only file so that a restart keeps the run state.
struct PrivateRedis {
    dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
}

impl PrivateRedis {
    fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut redis = Self { dir: tempfile::tempdir().unwrap(), port, child: None };
        redis.restart();
        redis
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn restart(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--appendonly", "yes", "--appendfsync", "always", "--save", ""])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server must be installed (scripts/test.sh installs it)");
        self.child = Some(Child(child));
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("private redis-server did not start on port {}", self.port);
    }

    fn kill(&mut self) {
        self.child = None;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_ride_out_a_redis_restart_and_the_run_completes() {
    let dir = tempfile::tempdir().unwrap();
    let ns = namespace("redis-restart");
    let run_id = unique("run");
    let data = dir.path().join("data");
    let manifest = dataset(&data, 200, 32 * 1024);
    let spec = RunSpec::load(&spec(dir.path(), &data, 5, &["aws"])).unwrap();
    let mut redis = PrivateRedis::start();
    let state: Arc<dyn RunStore> = Arc::new(control::RedisStore::connect(&redis.url(), ns.clone()).await.unwrap());
    let broker = broker().await;
    enqueue::start_run(&broker, state.as_ref(), &ns, &run_id, &spec, &manifest, &EnqueueOptions::default()).await.unwrap();
    let store = Arc::new(Mutex::new(MetricsStore::open(dir.path().join("store")).unwrap()));
    let (collector, stop_collector) = spawn_collector(&ns, store.clone());
    let (worker, stop) = spawn_worker(&ns, "aws", &data, &dir.path().join("bucket"), state.clone());
    wait_for("a few batches done", WAIT, || async { (store.lock().unwrap().count(&run_id).unwrap() >= 5).then_some(()) }).await;
    redis.kill();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    redis.restart();
    wait_for("every batch done after the restart", WAIT, || async {
        let p = state.progress(&run_id).await.ok()??;
        let stored = store.lock().unwrap().count(&run_id).unwrap();
        (p.count(BatchState::Done) == 40 && stored == 40).then_some(())
    })
    .await;
    stop.send(true).unwrap();
    stop_collector.send(true).unwrap();
    let stats = tokio::time::timeout(WAIT, worker).await.unwrap().unwrap();
    let collected = tokio::time::timeout(WAIT, collector).await.unwrap().unwrap();
    assert_eq!(collected.stored, 40, "no metrics lost or counted twice");
    assert!(stats.done >= 40, "{stats:?}");
    broker.close().await;
}

/// Closes, on the broker's side, every connection whose name is `name`.
fn close_connections(name: &str) -> usize {
    let out = Command::new("/usr/sbin/rabbitmqctl").args(["-q", "list_connections", "pid", "client_properties"]).output().unwrap();
    assert!(out.status.success(), "rabbitmqctl: {}", String::from_utf8_lossy(&out.stderr));
    let listing = String::from_utf8(out.stdout).unwrap();
    let mut closed = 0;
    for line in listing.lines().filter(|l| l.contains(name)) {
        let pid = line.split_whitespace().next().unwrap();
        let status = Command::new("/usr/sbin/rabbitmqctl").args(["-q", "close_connection", pid, "test closes it"]).status().unwrap();
        assert!(status.success());
        closed += 1;
    }
    closed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_reconnect_when_the_broker_drops_them_and_nothing_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let ns = namespace("amqp-drop");
    let data = dir.path().join("data");
    let manifest = dataset(&data, 100, 16 * 1024);
    let spec = RunSpec::load(&spec(dir.path(), &data, 5, &["aws"])).unwrap();
    let broker = broker().await;
    let state: Arc<dyn RunStore> = Arc::new(state(&ns).await);
    let store = Arc::new(Mutex::new(MetricsStore::open(dir.path().join("store")).unwrap()));
    let (collector, stop_collector) = spawn_collector(&ns, store.clone());
    let name = unique("dropped-worker");
    let (worker, stop) = spawn_named_worker(&ns, "aws", &data, &dir.path().join("bucket"), state.clone(), &name);
    let runs = [unique("before"), unique("after")];
    for (i, run_id) in runs.iter().enumerate() {
        if i == 1 {
            // The broker closes the worker's connection between the two runs: the second run's jobs
            // are served only if the worker reconnects.
            assert_eq!(close_connections(&name), 1);
        }
        enqueue::start_run(&broker, state.as_ref(), &ns, run_id, &spec, &manifest, &EnqueueOptions::default()).await.unwrap();
        wait_for("every batch of the run done and stored", WAIT, || async {
            let p = state.progress(run_id).await.unwrap()?;
            (p.count(BatchState::Done) == 20 && store.lock().unwrap().count(run_id).unwrap() == 20).then_some(())
        })
        .await;
    }
    stop.send(true).unwrap();
    stop_collector.send(true).unwrap();
    let stats = tokio::time::timeout(WAIT, worker).await.unwrap().unwrap();
    assert_eq!((stats.reconnects, stats.done), (1, 40), "{stats:?}");
    let collected = tokio::time::timeout(WAIT, collector).await.unwrap().unwrap();
    assert_eq!(collected.stored, 40);
    broker.close().await;
}

//! Helpers shared by the system tests: service addresses, unique names, datasets, binaries, waits.
//!
//! The services are real: `scripts/test.sh` starts RabbitMQ and Redis and exports `AMQP_URL` and
//! `REDIS_URL`; without them every test here fails with the connection error.

#![allow(dead_code)]

pub mod faults;
pub mod truth;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use control::consume::Connector;
use control::{AmqpBroker, Broker, Namespace, RedisStore};
use coordinator::manifest::{Entry, Manifest, sha256_hex};
use rand::{Rng, SeedableRng};

// The test servers' addresses and keys, and names no other test uses: one home for every crate's
// tests. (Each test binary uses some of them, as with the functions here.)
#[allow(unused_imports)]
pub use storage::testing::{
    azure_config as azure_test_config, azure_endpoint, azure_key, env_or, gcs_config as gcs_test_config, gcs_endpoint, s3_access_key, s3_config as s3_test_config,
    s3_endpoint, s3_secret_key, store_name, unique,
};

/// A store URL of `bucket` on the local S3 server (keys from the environment, see [`with_cloud_env`]).
pub fn s3_url(bucket: &str, prefix: &str) -> String {
    format!("s3://{bucket}/{prefix}?endpoint={}&path_style=true&region=us-east-1", s3_endpoint())
}

/// A store URL of `container` on Azurite (account key from the environment).
pub fn azure_url(container: &str, prefix: &str) -> String {
    format!("azure://{container}/{prefix}?endpoint={}&auth=account_key", azure_endpoint())
}

/// A store URL of `bucket` on the Cloud Storage emulator (which takes no credentials).
pub fn gs_url(bucket: &str, prefix: &str) -> String {
    format!("gs://{bucket}/{prefix}?endpoint={}&project=cloudbench-test&auth=none", gcs_endpoint())
}

/// Credentials reach the binaries the way they reach them in a cloud: from the environment.
pub fn with_cloud_env(cmd: &mut std::process::Command) -> &mut std::process::Command {
    cmd.env("AWS_ACCESS_KEY_ID", s3_access_key())
        .env("AWS_SECRET_ACCESS_KEY", s3_secret_key())
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AZURE_STORAGE_KEY", azure_key())
        .env("AMQP_URL", amqp_url())
        .env("REDIS_URL", redis_url())
}

/// [`run_ok`] with the clouds' credentials in the environment.
pub fn run(cmd: &mut std::process::Command) -> String {
    run_ok(with_cloud_env(cmd))
}

/// Starts `analyzer collect` into `store`, stopping by itself once `run_id` is complete and stored.
pub fn start_collector(ns: &Namespace, run_id: &str, store: &Path) -> Child {
    Child(collector_command(ns, run_id, store).spawn().unwrap())
}

/// `analyzer collect --until-complete RUN` into `store`, with the services' addresses set.
pub fn collector_command(ns: &Namespace, run_id: &str, store: &Path) -> std::process::Command {
    let mut collect = std::process::Command::new(bin("analyzer"));
    collect
        .args(["collect", "--namespace", ns.as_str(), "--until-complete", run_id, "--store"])
        .arg(store)
        .stderr(std::process::Stdio::null());
    with_cloud_env(&mut collect);
    collect
}

/// The `worker` binary of platform `local`: images from `data`, uploads into `bucket` (created), a
/// heartbeat every second, the services' addresses set, its log discarded.
pub fn local_worker(ns: &Namespace, data: &Path, bucket: &Path) -> std::process::Command {
    std::fs::create_dir_all(bucket).unwrap();
    let mut cmd = std::process::Command::new(bin("worker"));
    cmd.args(["--namespace", ns.as_str(), "--platform", "local", "--heartbeat-secs", "1"])
        .arg("--dataset-dir")
        .arg(data)
        .arg("--storage-dir")
        .arg(bucket)
        .stderr(std::process::Stdio::null());
    with_cloud_env(&mut cmd);
    cmd
}

/// Waits up to `timeout` for a collector from [`start_collector`] to finish, and checks it succeeded.
pub async fn wait_collected(collector: &mut Child, timeout: Duration) {
    let status = wait_for("the collector to store the whole run", timeout, || {
        let done = collector.0.try_wait().unwrap();
        async move { done }
    })
    .await;
    assert!(status.success(), "the collector failed: {status}");
}

/// The run's per-batch rows, as `analyzer export --format json` writes them.
pub fn export_rows(run_id: &str, store: &Path) -> Vec<serde_json::Value> {
    let out = run_ok(std::process::Command::new(bin("analyzer")).args(["export", "--format", "json", "--run", run_id, "--store"]).arg(store));
    serde_json::from_str(&out).unwrap()
}

/// Runs blocking work (waiting on a child process, polling a port) so that it does not stall the
/// async runtime it is called from: on a multi-threaded runtime the thread's other tasks move to
/// other threads first (`block_in_place`); elsewhere it simply runs.
pub fn blocking<T>(work: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => tokio::task::block_in_place(work),
        _ => work(),
    }
}

/// Longest a binary run by [`run_ok`] may take: a stuck process fails its test instead of hanging CI.
pub const RUN_DEADLINE: Duration = Duration::from_secs(300);

/// Runs a binary with the services' addresses set and returns its standard output; fails the test,
/// with its standard error, when it exits unsuccessfully or is still running after [`RUN_DEADLINE`]
/// (then it is killed).
pub fn run_ok(cmd: &mut std::process::Command) -> String {
    run_ok_within(cmd, RUN_DEADLINE)
}

/// [`run_ok`] with a deadline of its own.
pub fn run_ok_within(cmd: &mut std::process::Command, limit: Duration) -> String {
    blocking(|| run_ok_blocking(cmd, limit))
}

fn run_ok_blocking(cmd: &mut std::process::Command, limit: Duration) -> String {
    use std::io::Read;
    use std::process::Stdio;
    let mut child = cmd.env("AMQP_URL", amqp_url()).env("REDIS_URL", redis_url()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    // Both pipes are drained as the child writes, so that a full pipe cannot stall it.
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut bytes);
            }
            bytes
        })
    };
    let stdout = drain(child.stdout.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let stderr = drain(child.stderr.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let deadline = std::time::Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} still running after {limit:?}: killed");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let (stdout, stderr) = (stdout.join().unwrap(), stderr.join().unwrap());
    assert!(status.success(), "{cmd:?} failed: {}", String::from_utf8_lossy(&stderr));
    String::from_utf8(stdout).unwrap()
}

pub fn amqp_url() -> String {
    std::env::var("AMQP_URL").unwrap_or_else(|_| "amqp://127.0.0.1:5672/%2f".into())
}

pub fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A fresh namespace for one test; also turns on logs when `RUST_LOG` asks for them.
pub fn namespace(prefix: &str) -> Namespace {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "off".into()))
        .with_test_writer()
        .try_init();
    Namespace::new(&unique(prefix)).unwrap()
}

pub async fn broker() -> AmqpBroker {
    AmqpBroker::connect(&amqp_url()).await.expect("RabbitMQ must be running (scripts/test.sh starts it)")
}

pub async fn state(ns: &Namespace) -> RedisStore {
    RedisStore::connect(&redis_url(), ns.clone()).await.expect("Redis must be running (scripts/test.sh starts it)")
}

pub fn connector() -> Connector {
    Arc::new(|| Box::pin(async { AmqpBroker::connect(&amqp_url()).await.map(|b| Arc::new(b) as Arc<dyn Broker>) }))
}

/// Writes `count` files of `size` random bytes named like images, and their manifest.
pub fn dataset(dir: &Path, count: usize, size: usize) -> Manifest {
    std::fs::create_dir_all(dir).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(count as u64);
    let entries = (0..count)
        .map(|i| {
            let data: Vec<u8> = (0..size).map(|_| rng.random()).collect();
            let key = format!("{i:06}.jpg");
            std::fs::write(dir.join(&key), &data).unwrap();
            Entry { key, size: data.len() as u64, sha256: sha256_hex(&data) }
        })
        .collect();
    let manifest = Manifest::new("test".into(), entries).unwrap();
    manifest.save(&dir.join("manifest.json")).unwrap();
    manifest
}

/// Writes a run spec for `platforms` over `manifest_dir/manifest.json`.
pub fn spec(dir: &Path, manifest_dir: &Path, batch_size: u32, platforms: &[&str]) -> PathBuf {
    let mut text = format!("manifest = \"{}\"\nbatch_size = {batch_size}\ndelivery_limit = 3\n", manifest_dir.join("manifest.json").display());
    for p in platforms {
        text.push_str(&format!("[[platform]]\nname = \"{p}\"\n"));
    }
    let path = dir.join("run.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// A dataset of `images` random files of `size` bytes in `dir/data` and the spec `dir/run.toml` of
/// run `run_id` over it: batches of 4, one platform, `local`. Returns the spec's path.
pub fn local_run(dir: &Path, run_id: &str, images: usize, size: usize) -> PathBuf {
    dataset(&dir.join("data"), images, size);
    let path = dir.join("run.toml");
    std::fs::write(&path, format!("run_id = \"{run_id}\"\nmanifest = \"data/manifest.json\"\nbatch_size = 4\n[[platform]]\nname = \"local\"\n")).unwrap();
    path
}

/// Path of a workspace binary; `scripts/test.sh` builds them before the tests.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap();
    let path = dir.join(name);
    assert!(path.exists(), "{} not built: run `cargo build --workspace --bins` first", path.display());
    path
}

/// Polls `check` every 20 ms until it returns `Some`, failing the test after `timeout`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    poll_until(timeout, check).await.unwrap_or_else(|| panic!("timed out after {timeout:?} waiting for {what}"))
}

/// Polls `check` every 20 ms until it returns `Some`, or gives `None` after `timeout` (for a caller
/// that has more to say about the failure than [`wait_for`] does).
pub async fn poll_until<T, F, Fut>(timeout: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A child process killed when dropped, so a failing test leaves nothing behind.
pub struct Child(pub std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts an in-process worker for `platform`; send `true` on the returned sender to stop it.
pub fn spawn_worker(
    ns: &Namespace,
    platform: &str,
    dataset: &Path,
    bucket: &Path,
    state: Arc<dyn control::RunStore>,
) -> (tokio::task::JoinHandle<worker::runner::WorkerStats>, tokio::sync::watch::Sender<bool>) {
    spawn_named_worker(ns, platform, dataset, bucket, state, &unique(platform))
}

/// Like [`spawn_worker`], with `name` as the worker id and the broker connection's name.
pub fn spawn_named_worker(
    ns: &Namespace,
    platform: &str,
    dataset: &Path,
    bucket: &Path,
    state: Arc<dyn control::RunStore>,
    name: &str,
) -> (tokio::task::JoinHandle<worker::runner::WorkerStats>, tokio::sync::watch::Sender<bool>) {
    let connection_name = name.to_owned();
    let connector: Connector = Arc::new(move || {
        let name = connection_name.clone();
        Box::pin(async move { AmqpBroker::connect_named(&amqp_url(), &name).await.map(|b| Arc::new(b) as Arc<dyn Broker>) })
    });
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let worker = Arc::new(worker::runner::Worker {
        platform: platform.to_owned(),
        ns: ns.clone(),
        prefetch: 1,
        concurrency: 4,
        grace: Duration::from_secs(10),
        heartbeat: Duration::from_secs(1),
        keep_uploads: false,
        retry: storage::RetryPolicy::default(),
        identity: proto::v1::WorkerIdentity { worker_id: name.to_owned(), platform: platform.to_owned(), ..Default::default() },
        versions: Default::default(),
        source: Arc::new(storage::LocalDirStore::open(dataset, false).unwrap()),
        target: Arc::new(storage::LocalDirStore::create(bucket, false).unwrap()),
        inference: None,
        store: state,
        connector,
        telemetry: Default::default(),
    });
    (tokio::spawn(worker.run(control::consume::stopped(stop))), stop_tx)
}

/// Starts an in-process collector into `store`.
pub fn spawn_collector(
    ns: &Namespace,
    store: Arc<std::sync::Mutex<analyzer::store::MetricsStore>>,
) -> (tokio::task::JoinHandle<analyzer::collect::CollectStats>, tokio::sync::watch::Sender<bool>) {
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let ns = ns.clone();
    (tokio::spawn(async move { analyzer::collect::collect(&connector(), &ns, store, stop, Default::default()).await }), stop_tx)
}

/// The longest any single wait in a system test may take.
pub const WAIT: Duration = Duration::from_secs(90);

/// Stops a spawned task and returns what it returned, failing after [`WAIT`].
pub async fn finish<T>(task: (tokio::task::JoinHandle<T>, tokio::sync::watch::Sender<bool>)) -> T {
    let (handle, stop) = task;
    let _ = stop.send(true);
    tokio::time::timeout(WAIT, handle).await.expect("task did not stop in time").expect("task panicked")
}

/// One test's world: a temporary folder, a namespace, a dataset and its spec, the broker, the run
/// state and a metrics store, none shared with any other test.
pub struct World {
    pub dir: tempfile::TempDir,
    pub ns: Namespace,
    pub data: PathBuf,
    pub manifest: Manifest,
    pub spec_path: PathBuf,
    pub spec: coordinator::spec::RunSpec,
    pub broker: AmqpBroker,
    pub state: Arc<dyn control::RunStore>,
    pub store: Arc<std::sync::Mutex<analyzer::store::MetricsStore>>,
}

impl World {
    /// Builds a world with `images` random images of `bytes` each, in batches of `batch_size`.
    pub async fn new(prefix: &str, images: usize, bytes: usize, batch_size: u32, platforms: &[&str]) -> Self {
        let ns = namespace(prefix);
        let state: Arc<dyn control::RunStore> = Arc::new(state(&ns).await);
        Self::with_state(ns, state, images, bytes, batch_size, platforms).await
    }

    /// Like [`World::new`], with run state in `state`.
    pub async fn with_state(ns: Namespace, state: Arc<dyn control::RunStore>, images: usize, bytes: usize, batch_size: u32, platforms: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let manifest = dataset(&data, images, bytes);
        let spec_path = spec(dir.path(), &data, batch_size, platforms);
        let spec = coordinator::spec::RunSpec::load(&spec_path).unwrap();
        let store = Arc::new(std::sync::Mutex::new(analyzer::store::MetricsStore::open(dir.path().join("store")).unwrap()));
        Self { dir, ns, data, manifest, spec_path, spec, broker: broker().await, state, store }
    }

    /// Deletes this world's queues from the broker; every test ends with it, so that repeated runs do
    /// not pile up quorum queues (each is a Raft group the broker keeps running).
    pub async fn cleanup(self) {
        let platforms: Vec<String> = self.spec.platforms.clone();
        self.broker.delete(&self.ns, &platforms).await.expect("deleting the test's queues");
        self.broker.close().await;
    }

    /// Starts (or resumes) run `run_id` through the coordinator library.
    pub async fn start(&self, run_id: &str) -> coordinator::enqueue::EnqueueReport {
        coordinator::enqueue::start_run(&self.broker, self.state.as_ref(), &self.ns, run_id, &self.spec, &self.manifest, &Default::default())
            .await
            .unwrap()
    }

    /// A fresh bucket folder of this world.
    pub fn bucket(&self, name: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::create_dir_all(&path).unwrap();
        path
    }

    pub fn worker(&self, platform: &str) -> (tokio::task::JoinHandle<worker::runner::WorkerStats>, tokio::sync::watch::Sender<bool>) {
        spawn_worker(&self.ns, platform, &self.data, &self.bucket(&unique("bucket")), self.state.clone())
    }

    pub fn collector(&self) -> (tokio::task::JoinHandle<analyzer::collect::CollectStats>, tokio::sync::watch::Sender<bool>) {
        spawn_collector(&self.ns, self.store.clone())
    }

    /// The `worker` binary for `platform` in this world, writing to a fresh bucket with fsync.
    pub fn worker_process(&self, platform: &str, extra: &[&str]) -> std::process::Command {
        let mut cmd = std::process::Command::new(bin("worker"));
        cmd.args(["--platform", platform, "--namespace", self.ns.as_str(), "--durable"])
            .arg("--dataset-dir")
            .arg(&self.data)
            .arg("--storage-dir")
            .arg(self.bucket(&unique("bucket")))
            .args(extra)
            .env("AMQP_URL", amqp_url())
            .env("REDIS_URL", redis_url())
            .env("RUST_LOG", "warn");
        cmd
    }

    /// Number of batches of `run_id` in `state`; 0 while the run state cannot be read (a test that
    /// restarts Redis polls through the outage; a lasting failure ends in the wait's timeout).
    pub async fn count(&self, run_id: &str, state: control::state::BatchState) -> u64 {
        self.state.progress(run_id).await.ok().flatten().map_or(0, |p| p.count(state))
    }

    /// Number of jobs of `run_id` in the metrics store.
    pub fn stored(&self, run_id: &str) -> u64 {
        self.store.lock().unwrap().count(run_id).unwrap() as u64
    }

    /// Waits until `run_id` is complete and the store holds one record per done batch.
    pub async fn wait_complete(&self, run_id: &str) -> control::state::RunProgress {
        wait_for("the run to complete and its metrics to be stored", WAIT, || async {
            let progress = self.state.progress(run_id).await.ok()??;
            let stored = self.stored(run_id);
            progress.is_collected(stored).then_some(progress)
        })
        .await
    }

    /// Job keys stored for `run_id`, asserting none is stored twice.
    pub fn keys_once(&self, run_id: &str) -> std::collections::BTreeMap<String, usize> {
        let mut counts = std::collections::BTreeMap::new();
        for m in self.store.lock().unwrap().read(run_id).unwrap() {
            *counts.entry(m.job_key).or_insert(0) += 1;
        }
        assert!(counts.values().all(|n| *n == 1), "a job key stored twice: {counts:?}");
        counts
    }
}

/// A Redis server of this test's own, with an append-only file so that a restart keeps the run state.
pub struct PrivateRedis {
    dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
}

impl PrivateRedis {
    pub fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut redis = Self { dir: tempfile::tempdir().unwrap(), port, child: None };
        redis.restart();
        redis
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn restart(&mut self) {
        let child = std::process::Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--appendonly", "yes", "--appendfsync", "always", "--save", ""])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server must be installed (scripts/test.sh installs it)");
        self.child = Some(Child(child));
        let port = self.port;
        let up = blocking(|| {
            (0..200).any(|_| {
                let ok = std::net::TcpStream::connect(("127.0.0.1", port)).is_ok();
                if !ok {
                    std::thread::sleep(Duration::from_millis(20));
                }
                ok
            })
        });
        assert!(up, "private redis-server did not start on port {port}");
    }

    pub fn kill(&mut self) {
        self.child = None;
    }
}


/// A free TCP port on loopback.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A RabbitMQ node of this test's own (its own node name, ports and data folder), so that the test
/// can stop and start it without touching the broker every other test uses. Its quorum queues and
/// persistent messages live in the data folder and survive a restart, as on a real server.
pub struct PrivateRabbit {
    dir: tempfile::TempDir,
    node: String,
    port: u16,
    dist_port: u16,
    child: Option<Child>,
}

impl PrivateRabbit {
    pub fn start() -> Self {
        Self::start_with("")
    }

    /// A node with these lines added to its `rabbitmq.conf` (e.g. a TLS listener).
    pub fn start_with(config: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("enabled_plugins"), "[].").unwrap();
        let node = format!("{}@localhost", unique("cbtest"));
        let port = free_port();
        std::fs::write(dir.path().join("rabbitmq.conf"), config).unwrap();
        let mut rabbit = Self { dir, node, port, dist_port: free_port(), child: None };
        rabbit.launch();
        rabbit
    }

    pub fn url(&self) -> String {
        format!("amqp://127.0.0.1:{}/%2f", self.port)
    }

    fn launch(&mut self) {
        let at = |name: &str| self.dir.path().join(name);
        let child = std::process::Command::new("/usr/lib/rabbitmq/bin/rabbitmq-server")
            .env("RABBITMQ_NODENAME", &self.node)
            .env("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1")
            .env("RABBITMQ_NODE_PORT", self.port.to_string())
            .env("RABBITMQ_DIST_PORT", self.dist_port.to_string())
            .env("RABBITMQ_MNESIA_BASE", at("mnesia"))
            .env("RABBITMQ_LOG_BASE", at("log"))
            .env("RABBITMQ_PID_FILE", at("pid"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", at("enabled_plugins"))
            .env("RABBITMQ_CONFIG_FILE", at("rabbitmq.conf"))
            .env("RABBITMQ_ADVANCED_CONFIG_FILE", at("advanced.config"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("rabbitmq-server must be installed (scripts/test.sh installs it)");
        self.child = Some(Child(child));
        let deadline = Instant::now() + Duration::from_secs(90);
        let port = self.port;
        let up = blocking(|| {
            while Instant::now() < deadline {
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return true;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            false
        });
        if up {
            return;
        }
        panic!("private RabbitMQ node {} did not listen on port {} within 90 s; logs in {}", self.node, self.port, at("log").display());
    }

    /// Stops the node the way a service manager does (SIGTERM, waiting for it to exit).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            unsafe { libc::kill(child.0.id() as libc::pid_t, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(60);
            blocking(|| {
                while child.0.try_wait().unwrap().is_none() && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(100));
                }
            });
            // Dropping the child kills what is left of it.
        }
    }

    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }
}

impl Drop for PrivateRabbit {
    fn drop(&mut self) {
        self.stop();
    }
}

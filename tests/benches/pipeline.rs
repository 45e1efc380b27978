//! Pipeline benchmark against real RabbitMQ and Redis (run by `scripts/bench.sh`).
//!
//! Prints, each beside a peer measured in the same run on the same servers:
//! - jobs enqueued per second by the coordinator (run state in Redis, publisher confirms), against
//!   bare confirmed publishing of the same messages with lapin (no run state);
//! - the worker's overhead per batch (delivery to acknowledgement minus the storage phases) at p50
//!   and p99, against the floor the services set: the same round trips made directly (claim and
//!   finish scripts in Redis, a confirmed publish, an acknowledgement).

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use control::state::BatchState;
use control::{Broker, RunStore};
use coordinator::enqueue::{self, EnqueueOptions};
use coordinator::manifest::{Entry, Manifest};
use coordinator::spec::RunSpec;
use futures::StreamExt;
use lapin::options::*;
use lapin::types::FieldTable;

const ENQUEUE_JOBS: usize = 20_000;
const WORKER_JOBS: usize = 2_000;

fn manifest(n: usize) -> Manifest {
    let objects = (0..n).map(|i| Entry { key: format!("{i:06}.jpg"), size: 160_000, sha256: format!("{i:064x}") }).collect();
    Manifest::new("bench".into(), objects).unwrap()
}

fn spec(batch_size: u32, manifest: &std::path::Path) -> RunSpec {
    let text = format!("manifest = \"{}\"\nbatch_size = {batch_size}\n[[platform]]\nname = \"bench\"\n", manifest.display());
    RunSpec::parse(&text, std::path::Path::new(".")).unwrap()
}

fn percentile(sorted_us: &[u64], q: f64) -> f64 {
    sorted_us[((sorted_us.len() - 1) as f64 * q).round() as usize] as f64 / 1000.0
}

/// Coordinator enqueue rate versus bare confirmed publishing.
async fn enqueue_rate() {
    let ns = namespace("bench-enqueue");
    let state = state(&ns).await;
    let broker = broker().await;
    let manifest = manifest(ENQUEUE_JOBS);
    let spec = spec(1, std::path::Path::new("m.json"));
    let report = enqueue::start_run(&broker, &state, &ns, &unique("run"), &spec, &manifest, &EnqueueOptions::default()).await.unwrap();
    assert_eq!(report.published as usize, ENQUEUE_JOBS);
    let ours = report.published as f64 / report.elapsed.as_secs_f64();

    // Peer: the same number of messages of the same size, published with confirms in windows of
    // 512, straight to a quorum queue, with no run state.
    let payload = vec![0u8; 160];
    let peer_ns = namespace("bench-peer");
    broker.declare(&peer_ns, &["bench".into()], 5).await.unwrap();
    let connection = lapin::Connection::connect(&amqp_url(), Default::default()).await.unwrap();
    let channel = connection.create_channel().await.unwrap();
    channel.confirm_select(ConfirmSelectOptions::default()).await.unwrap();
    let queue = peer_ns.job_queue("bench");
    let started = Instant::now();
    for window in (0..ENQUEUE_JOBS).collect::<Vec<_>>().chunks(512) {
        let mut confirms = Vec::new();
        for _ in window {
            let props = lapin::BasicProperties::default().with_delivery_mode(2);
            let c = channel.basic_publish("".into(), queue.as_str().into(), BasicPublishOptions::default(), &payload, props).await.unwrap();
            confirms.push(c);
        }
        for c in confirms {
            assert!(c.await.unwrap().is_ack());
        }
    }
    let peer = ENQUEUE_JOBS as f64 / started.elapsed().as_secs_f64();
    println!("enqueue: coordinator {ours:.0} jobs/s (run state in Redis + confirms), bare confirmed publish {peer:.0} msg/s, ratio {:.2}", ours / peer);
    for ns in [&ns, &peer_ns] {
        broker.delete(ns, &["bench".into()]).await.unwrap();
    }
    broker.close().await;
}

/// Worker overhead per batch versus the services' own round trips.
async fn worker_overhead() {
    let dir = tempfile::tempdir().unwrap();
    let ns = namespace("bench-worker");
    let data = dir.path().join("data");
    let manifest = dataset(&data, WORKER_JOBS, 64);
    let spec = spec(1, &data.join("manifest.json"));
    let run_id = unique("run");
    let broker = broker().await;
    let state: Arc<dyn RunStore> = Arc::new(state(&ns).await);
    enqueue::start_run(&broker, state.as_ref(), &ns, &run_id, &spec, &manifest, &EnqueueOptions::default()).await.unwrap();
    let store = Arc::new(Mutex::new(analyzer::store::MetricsStore::open(dir.path().join("store")).unwrap()));
    let (collector, stop_collector) = spawn_collector(&ns, store);
    let (worker, stop_worker) = spawn_worker(&ns, "bench", &data, &dir.path().join("bucket"), state.clone());
    wait_for("the worker to finish", Duration::from_secs(600), || async {
        let p = state.progress(&run_id).await.unwrap()?;
        (p.count(BatchState::Done) as usize == WORKER_JOBS).then_some(())
    })
    .await;
    stop_worker.send(true).unwrap();
    let stats = worker.await.unwrap();
    stop_collector.send(true).unwrap();
    collector.await.unwrap();
    let (p50, p99) = (stats.overhead.value_at_quantile(0.5) as f64 / 1000.0, stats.overhead.value_at_quantile(0.99) as f64 / 1000.0);

    // Peer: per job, what the services cost at least: a claim and a finish script in Redis, a
    // confirmed publish of a metrics-sized message to a quorum queue, and consuming and acknowledging
    // one message.
    let mut redis = redis::Client::open(redis_url()).unwrap().get_multiplexed_async_connection().await.unwrap();
    let script = redis::Script::new("return redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])");
    let peer_ns = namespace("bench-floor");
    broker.declare(&peer_ns, &["bench".into()], 5).await.unwrap();
    let connection = lapin::Connection::connect(&amqp_url(), Default::default()).await.unwrap();
    let publisher = connection.create_channel().await.unwrap();
    publisher.confirm_select(ConfirmSelectOptions::default()).await.unwrap();
    let consumer_channel = connection.create_channel().await.unwrap();
    consumer_channel.basic_qos(1, BasicQosOptions::default()).await.unwrap();
    let (jobs, metrics) = (peer_ns.job_queue("bench"), peer_ns.metrics_queue());
    for _ in 0..WORKER_JOBS {
        publisher.basic_publish("".into(), jobs.as_str().into(), Default::default(), &[0u8; 300], Default::default()).await.unwrap();
    }
    publisher.wait_for_confirms().await.unwrap();
    let mut consumer = consumer_channel.basic_consume(jobs.as_str().into(), "floor".into(), Default::default(), FieldTable::default()).await.unwrap();
    let mut floor = Vec::with_capacity(WORKER_JOBS);
    let mut confirms = Vec::with_capacity(WORKER_JOBS);
    let key = peer_ns.key("floor");
    for i in 0..WORKER_JOBS {
        let delivery = consumer.next().await.unwrap().unwrap();
        let t = Instant::now();
        let _: i64 = script.key(&key).arg(i).arg("running").invoke_async(&mut redis).await.unwrap();
        let published = Instant::now();
        let confirm = publisher.basic_publish("".into(), metrics.as_str().into(), Default::default(), &[0u8; 900], Default::default()).await.unwrap();
        assert!(confirm.await.unwrap().is_ack());
        confirms.push(published.elapsed().as_micros() as u64);
        let _: i64 = script.key(&key).arg(i).arg("done").invoke_async(&mut redis).await.unwrap();
        delivery.ack(BasicAckOptions::default()).await.unwrap();
        floor.push(t.elapsed().as_micros() as u64);
    }
    floor.sort();
    confirms.sort();
    let (f50, f99) = (percentile(&floor, 0.5), percentile(&floor, 0.99));
    let (c50, c99) = (percentile(&confirms, 0.5), percentile(&confirms, 0.99));
    println!(
        "worker overhead per batch ({WORKER_JOBS} batches): p50 {p50:.3} ms, p99 {p99:.3} ms; service round-trip floor p50 {f50:.3} ms, p99 {f99:.3} ms; ratio p50 {:.2}, p99 {:.2}",
        p50 / f50,
        p99 / f99
    );
    println!("  of the floor, one confirmed publish to a quorum queue: p50 {c50:.3} ms, p99 {c99:.3} ms");
    for ns in [&ns, &peer_ns] {
        broker.delete(ns, &["bench".into()]).await.unwrap();
    }
    broker.close().await;
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list` and test harness probes
    }
    enqueue_rate().await;
    worker_overhead().await;
}

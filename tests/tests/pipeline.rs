//! The pipeline against real RabbitMQ and Redis: every batch arrives exactly once, whatever crashes.

mod common;

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use analyzer::store::MetricsStore;
use common::*;
use control::state::BatchState;
use control::{Broker, Outgoing, RunStore};
use coordinator::enqueue::{self, EnqueueOptions};
use coordinator::spec::RunSpec;

const WAIT: Duration = Duration::from_secs(90);

/// Waits until `run_id` is complete and the store holds one record per done batch.
async fn wait_complete(state: &dyn RunStore, store: &Arc<Mutex<MetricsStore>>, run_id: &str) -> control::state::RunProgress {
    wait_for("the run to complete and its metrics to be stored", WAIT, || async {
        let progress = state.progress(run_id).await.unwrap()?;
        let stored = store.lock().unwrap().count(run_id).unwrap() as u64;
        (progress.is_complete() && stored >= progress.count(BatchState::Done)).then_some(progress)
    })
    .await
}

fn keys_once(store: &Arc<Mutex<MetricsStore>>, run_id: &str) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for m in store.lock().unwrap().read(run_id).unwrap() {
        *counts.entry(m.job_key).or_insert(0) += 1;
    }
    assert!(counts.values().all(|n| *n == 1), "a job key stored twice: {counts:?}");
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multi_platform_run_delivers_every_batch_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let ns = namespace("multi");
    let run_id = unique("run");
    let manifest = dataset(&dir.path().join("data"), 40, 2048);
    let spec = RunSpec::load(&spec(dir.path(), &dir.path().join("data"), 4, &["aws", "azure", "local"])).unwrap();
    let broker = broker().await;
    let state: Arc<dyn RunStore> = Arc::new(state(&ns).await);
    let report = enqueue::start_run(&broker, state.as_ref(), &ns, &run_id, &spec, &manifest, &EnqueueOptions::default()).await.unwrap();
    assert_eq!((report.batches, report.published), (30, 30));

    let store = Arc::new(Mutex::new(MetricsStore::open(dir.path().join("store")).unwrap()));
    let (collector, stop_collector) = spawn_collector(&ns, store.clone());
    let mut workers = Vec::new();
    for platform in ["aws", "azure", "local"] {
        for n in 0..2 {
            let bucket = dir.path().join(format!("bucket-{platform}-{n}"));
            workers.push(spawn_worker(&ns, platform, &dir.path().join("data"), &bucket, state.clone()));
        }
    }
    let progress = wait_complete(state.as_ref(), &store, &run_id).await;
    assert_eq!(progress.count(BatchState::Done), 30);
    let keys = keys_once(&store, &run_id);
    assert_eq!(keys.len(), 30);
    for platform in ["aws", "azure", "local"] {
        assert_eq!(keys.keys().filter(|k| k.contains(&format!("/{platform}/"))).count(), 10, "{platform}");
    }
    let mut done = 0;
    for (handle, stop) in workers {
        stop.send(true).unwrap();
        done += tokio::time::timeout(WAIT, handle).await.unwrap().unwrap().done;
    }
    assert_eq!(done, 30, "each batch ran once");
    stop_collector.send(true).unwrap();
    let collected = tokio::time::timeout(WAIT, collector).await.unwrap().unwrap();
    assert_eq!((collected.stored, collected.malformed), (30, 0));
    // Every byte of every image was verified after download: no errors in any batch.
    assert!(store.lock().unwrap().read(&run_id).unwrap().iter().all(|m| m.errors.is_empty() && m.images > 0));
    assert_eq!(broker.depth(&ns.dead_letter_queue()).await.unwrap(), 0);
    broker.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_jobs_and_metrics_are_dead_lettered_and_work_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let ns = namespace("malformed");
    let run_id = unique("run");
    let manifest = dataset(&dir.path().join("data"), 4, 1024);
    let spec = RunSpec::load(&spec(dir.path(), &dir.path().join("data"), 4, &["aws"])).unwrap();
    let broker = broker().await;
    let state: Arc<dyn RunStore> = Arc::new(state(&ns).await);
    broker.declare(&ns, &["aws".to_owned()], 3).await.unwrap();
    let garbage = Outgoing { id: "garbage".into(), kind: proto::BATCH_JOB_TYPE, payload: b"\xff\xff not protobuf".to_vec() };
    broker.publish(&ns.job_queue("aws"), &[garbage.clone()]).await.unwrap();
    broker.publish(&ns.metrics_queue(), &[garbage]).await.unwrap();
    enqueue::start_run(&broker, state.as_ref(), &ns, &run_id, &spec, &manifest, &EnqueueOptions::default()).await.unwrap();

    let store = Arc::new(Mutex::new(MetricsStore::open(dir.path().join("store")).unwrap()));
    let (collector, stop_collector) = spawn_collector(&ns, store.clone());
    let (worker, stop_worker) = spawn_worker(&ns, "aws", &dir.path().join("data"), &dir.path().join("bucket"), state.clone());
    wait_complete(state.as_ref(), &store, &run_id).await;
    wait_for("both malformed messages in the dead-letter queue", WAIT, || async {
        (broker.depth(&ns.dead_letter_queue()).await.unwrap() == 2).then_some(())
    })
    .await;
    stop_worker.send(true).unwrap();
    stop_collector.send(true).unwrap();
    let worker = tokio::time::timeout(WAIT, worker).await.unwrap().unwrap();
    let collected = tokio::time::timeout(WAIT, collector).await.unwrap().unwrap();
    assert_eq!((worker.malformed, worker.done), (1, 1));
    assert_eq!((collected.malformed, collected.stored), (1, 1));
    broker.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_batch_is_replaced_and_the_batch_counted_once() {
    let dir = tempfile::tempdir().unwrap();
    let ns = namespace("killed");
    let run_id = unique("run");
    let data = dir.path().join("data");
    // One batch large enough, written with fsync one object at a time, to be killed in the middle.
    let manifest = dataset(&data, 400, 64 * 1024);
    let spec = RunSpec::load(&spec(dir.path(), &data, 400, &["aws"])).unwrap();
    let broker = broker().await;
    let state: Arc<dyn RunStore> = Arc::new(state(&ns).await);
    enqueue::start_run(&broker, state.as_ref(), &ns, &run_id, &spec, &manifest, &EnqueueOptions::default()).await.unwrap();
    let store = Arc::new(Mutex::new(MetricsStore::open(dir.path().join("store")).unwrap()));
    let (collector, stop_collector) = spawn_collector(&ns, store.clone());

    std::fs::create_dir(dir.path().join("bucket")).unwrap();
    let victim = Command::new(bin("worker"))
        .args(["--platform", "aws", "--namespace", ns.as_str(), "--concurrency", "1", "--durable"])
        .arg("--dataset-dir")
        .arg(&data)
        .arg("--storage-dir")
        .arg(dir.path().join("bucket"))
        .env("AMQP_URL", amqp_url())
        .env("REDIS_URL", redis_url())
        .env("RUST_LOG", "warn")
        .spawn()
        .unwrap();
    let mut victim = Child(victim);
    wait_for("the worker to start the batch", WAIT, || async {
        let running = state.progress(&run_id).await.unwrap()?.count(BatchState::Running);
        (running == 1).then_some(())
    })
    .await;
    victim.0.kill().unwrap(); // SIGKILL: no chance to return the job
    victim.0.wait().unwrap();
    assert_eq!(store.lock().unwrap().count(&run_id).unwrap(), 0, "killed before finishing the batch");

    let (worker, stop_worker) = spawn_worker(&ns, "aws", &data, &dir.path().join("bucket2"), state.clone());
    wait_complete(state.as_ref(), &store, &run_id).await;
    let keys = keys_once(&store, &run_id);
    assert_eq!(keys.len(), 1);
    let metrics = store.lock().unwrap().read(&run_id).unwrap().remove(0);
    assert!(metrics.previous_deliveries >= 1, "the batch ran again after a redelivery");
    assert_eq!(metrics.images, 400);
    stop_worker.send(true).unwrap();
    stop_collector.send(true).unwrap();
    assert_eq!(tokio::time::timeout(WAIT, worker).await.unwrap().unwrap().done, 1);
    tokio::time::timeout(WAIT, collector).await.unwrap().unwrap();
    broker.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coordinator_restarted_mid_enqueue_produces_no_duplicate() {
    let dir = tempfile::tempdir().unwrap();
    let ns = namespace("restart");
    let run_id = unique("run");
    let data = dir.path().join("data");
    dataset(&data, 600, 16);
    let spec_path = spec(dir.path(), &data, 1, &["aws"]);
    let state: Arc<dyn RunStore> = Arc::new(state(&ns).await);
    let coordinator = |extra: &[&str]| {
        let mut cmd = Command::new(bin("coordinator"));
        cmd.args(["--namespace", ns.as_str(), "run"]).arg(&spec_path).args(["--run-id", &run_id]).args(extra);
        cmd.env("AMQP_URL", amqp_url()).env("REDIS_URL", redis_url()).stdout(std::process::Stdio::null());
        cmd
    };
    let mut first = Child(coordinator(&["--max-rate", "300"]).spawn().unwrap());
    wait_for("part of the run to be enqueued", WAIT, || async {
        let queued = state.progress(&run_id).await.unwrap()?.count(BatchState::Queued);
        (queued >= 100).then_some(())
    })
    .await;
    first.0.kill().unwrap();
    first.0.wait().unwrap();
    let progress = state.progress(&run_id).await.unwrap().unwrap();
    assert!(progress.count(BatchState::Pending) > 0, "killed in the middle of the enqueue");

    let status = coordinator(&[]).status().unwrap();
    assert!(status.success(), "the restarted coordinator resumes the run");
    let broker = broker().await;
    let in_queue = broker.depth(&ns.job_queue("aws")).await.unwrap();
    let progress = state.progress(&run_id).await.unwrap().unwrap();
    assert_eq!(progress.count(BatchState::Queued), 600, "every batch queued");
    // At most the chunk in flight at the kill can be in the queue twice; the workers drop copies.
    assert!((600..600 + 256).contains(&in_queue), "{in_queue} messages for 600 batches");

    let store = Arc::new(Mutex::new(MetricsStore::open(dir.path().join("store")).unwrap()));
    let (collector, stop_collector) = spawn_collector(&ns, store.clone());
    let workers: Vec<_> = (0..2).map(|n| spawn_worker(&ns, "aws", &data, &dir.path().join(format!("b{n}")), state.clone())).collect();
    wait_complete(state.as_ref(), &store, &run_id).await;
    wait_for("the queue to drain", WAIT, || async { (broker.depth(&ns.job_queue("aws")).await.unwrap() == 0).then_some(()) }).await;
    let (mut done, mut duplicates) = (0, 0);
    for (handle, stop) in workers {
        stop.send(true).unwrap();
        let stats = tokio::time::timeout(WAIT, handle).await.unwrap().unwrap();
        done += stats.done;
        duplicates += stats.duplicates;
    }
    assert_eq!(done, 600, "each batch ran exactly once");
    assert_eq!(done + duplicates, in_queue, "every extra copy was recognised and dropped");
    assert_eq!(keys_once(&store, &run_id).len(), 600);
    stop_collector.send(true).unwrap();
    tokio::time::timeout(WAIT, collector).await.unwrap().unwrap();
    broker.close().await;
}

#[tokio::test]
async fn an_invalid_spec_or_config_is_one_line_and_a_failure() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "manifest = 'm.json'\nbatch_sise = 3\n[[platform]]\nname = 'aws'\n").unwrap();
    let out = Command::new(bin("coordinator")).arg("run").arg(&bad).output().unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("unknown field") && stderr.contains("batch_sise"), "{stderr}");

    let out = Command::new(bin("worker")).args(["--platform", "aws"]).env_remove("CLOUDBENCH_DATASET_DIR").output().unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!((out.status.code(), stderr.trim()), (Some(1), "error: no dataset: give --dataset-dir or a [dataset] table"));
}

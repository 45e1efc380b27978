//! The pipeline against real RabbitMQ and Redis: every batch arrives exactly once, whatever crashes.

mod common;

use std::process::Command;

use common::*;
use control::state::BatchState;
use control::{Broker, Outgoing};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multi_platform_run_delivers_every_batch_exactly_once() {
    let platforms = ["aws", "azure", "local"];
    let world = World::new("multi", 40, 2048, 4, &platforms).await;
    let run_id = unique("run");
    let report = world.start(&run_id).await;
    assert_eq!((report.batches, report.published), (30, 30));
    let collector = world.collector();
    let workers: Vec<_> = platforms.iter().flat_map(|p| [world.worker(p), world.worker(p)]).collect();

    let progress = world.wait_complete(&run_id).await;
    assert_eq!(progress.count(BatchState::Done), 30);
    let keys = world.keys_once(&run_id);
    assert_eq!(keys.len(), 30);
    for platform in platforms {
        assert_eq!(keys.keys().filter(|k| k.contains(&format!("/{platform}/"))).count(), 10, "{platform}");
    }
    let mut done = 0;
    for worker in workers {
        done += finish(worker).await.done;
    }
    assert_eq!(done, 30, "each batch ran once");
    let collected = finish(collector).await;
    assert_eq!((collected.stored, collected.malformed), (30, 0));
    // Every byte of every image was verified after download: no errors in any batch.
    assert!(world.store.lock().unwrap().read(&run_id).unwrap().iter().all(|m| m.errors.is_empty() && m.images > 0 && m.manifest_sha256.len() == 64));
    assert_eq!(world.broker.depth(&world.ns.dead_letter_queue()).await.unwrap(), 0);
    world.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_jobs_and_metrics_are_dead_lettered_and_work_goes_on() {
    let world = World::new("malformed", 4, 1024, 4, &["aws"]).await;
    let run_id = unique("run");
    world.broker.declare(&world.ns, &["aws".to_owned()], 3).await.unwrap();
    let garbage = Outgoing { id: "garbage".into(), kind: proto::BATCH_JOB_TYPE, payload: b"\xff\xff not protobuf".to_vec() };
    world.broker.publish(&world.ns.job_queue("aws"), std::slice::from_ref(&garbage)).await.unwrap();
    world.broker.publish(&world.ns.metrics_queue(), &[garbage]).await.unwrap();
    world.start(&run_id).await;
    let collector = world.collector();
    let worker = world.worker("aws");
    world.wait_complete(&run_id).await;
    wait_for("both malformed messages in the dead-letter queue", WAIT, || async {
        (world.broker.depth(&world.ns.dead_letter_queue()).await.unwrap() == 2).then_some(())
    })
    .await;
    let worker = finish(worker).await;
    let collected = finish(collector).await;
    assert_eq!((worker.malformed, worker.done), (1, 1));
    assert_eq!((collected.malformed, collected.stored), (1, 1));
    world.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_batch_is_replaced_and_the_batch_counted_once() {
    // One batch large enough, written with fsync one object at a time, to be killed in the middle.
    let world = World::new("killed", 800, 64 * 1024, 800, &["aws"]).await;
    let run_id = unique("run");
    world.start(&run_id).await;
    let collector = world.collector();
    let mut victim = Child(world.worker_process("aws", &["--concurrency", "1"]).spawn().unwrap());
    wait_for("the worker to start the batch", WAIT, || async { (world.count(&run_id, BatchState::Running).await == 1).then_some(()) }).await;
    victim.0.kill().unwrap(); // SIGKILL: no chance to return the job
    victim.0.wait().unwrap();
    assert_eq!(world.stored(&run_id), 0, "killed before finishing the batch");

    let worker = world.worker("aws");
    world.wait_complete(&run_id).await;
    assert_eq!(world.keys_once(&run_id).len(), 1);
    let metrics = world.store.lock().unwrap().read(&run_id).unwrap().remove(0);
    assert!(metrics.previous_deliveries >= 1, "the batch ran again after a redelivery");
    assert_eq!(metrics.images, 800);
    assert_eq!(finish(worker).await.done, 1);
    finish(collector).await;
    world.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coordinator_restarted_mid_enqueue_produces_no_duplicate() {
    let world = World::new("restart", 600, 16, 1, &["aws"]).await;
    let run_id = unique("run");
    let coordinator = |extra: &[&str]| {
        let mut cmd = Command::new(bin("coordinator"));
        cmd.args(["--namespace", world.ns.as_str(), "run"]).arg(&world.spec_path).args(["--run-id", &run_id]).args(extra);
        cmd.env("AMQP_URL", amqp_url()).env("REDIS_URL", redis_url()).stdout(std::process::Stdio::null());
        cmd
    };
    let mut first = Child(coordinator(&["--max-rate", "300"]).spawn().unwrap());
    wait_for("part of the run to be enqueued", WAIT, || async { (world.count(&run_id, BatchState::Queued).await >= 100).then_some(()) }).await;
    first.0.kill().unwrap();
    first.0.wait().unwrap();
    assert!(world.count(&run_id, BatchState::Pending).await > 0, "killed in the middle of the enqueue");

    assert!(coordinator(&[]).status().unwrap().success(), "the restarted coordinator resumes the run");
    let in_queue = world.broker.depth(&world.ns.job_queue("aws")).await.unwrap();
    assert_eq!(world.count(&run_id, BatchState::Queued).await, 600, "every batch queued");
    // At most the chunk in flight at the kill can be in the queue twice; the workers drop copies.
    assert!((600..600 + 256).contains(&in_queue), "{in_queue} messages for 600 batches");

    let collector = world.collector();
    let workers = [world.worker("aws"), world.worker("aws")];
    world.wait_complete(&run_id).await;
    wait_for("the queue to drain", WAIT, || async {
        (world.broker.depth(&world.ns.job_queue("aws")).await.unwrap() == 0).then_some(())
    })
    .await;
    let (mut done, mut duplicates) = (0, 0);
    for worker in workers {
        let stats = finish(worker).await;
        done += stats.done;
        duplicates += stats.duplicates;
    }
    assert_eq!(done, 600, "each batch ran exactly once");
    assert_eq!(done + duplicates, in_queue, "every extra copy was recognised and dropped");
    assert_eq!(world.keys_once(&run_id).len(), 600);
    finish(collector).await;
    world.cleanup().await;
}

#[test]
fn an_invalid_spec_or_config_is_one_line_and_a_failure() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "manifest = 'm.json'\nbatch_sise = 3\n[[platform]]\nname = 'aws'\n").unwrap();
    let out = Command::new(bin("coordinator")).arg("run").arg(&bad).output().unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("unknown field") && stderr.contains("batch_sise"), "{stderr}");

    let out = Command::new(bin("worker")).args(["--platform", "aws"]).env_remove("CLOUDBENCH_DATASET_DIR").env_remove("CLOUDBENCH_DATASET").output().unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!((out.status.code(), stderr.trim()), (Some(1), "error: no dataset: give --dataset, --dataset-dir or a [dataset] table"));
}

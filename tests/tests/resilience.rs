//! Failures the pipeline must survive: a platform that keeps failing, a SIGTERM in the middle of a
//! batch, Redis restarting, the broker dropping connections.

mod common;

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use control::state::BatchState;
use control::{Broker, RunStore};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_keeps_failing_is_dead_lettered_at_its_limit_and_marked_failed() {
    let world = World::new("failing", 2, 100, 2, &["aws"]).await; // delivery_limit = 3
    let run_id = unique("run");
    world.start(&run_id).await;
    let bucket = world.bucket("bucket");
    let worker = spawn_worker(&world.ns, "aws", &world.data, &bucket, world.state.clone());
    std::fs::remove_dir(&bucket).unwrap(); // the bucket disappears: every attempt fails
    wait_for("the batch to be marked failed", WAIT, || async { (world.count(&run_id, BatchState::Failed).await == 1).then_some(()) }).await;
    assert!(world.state.progress(&run_id).await.unwrap().unwrap().is_complete());
    wait_for("the job in the dead-letter queue", WAIT, || async {
        (world.broker.depth(&world.ns.dead_letter_queue()).await.unwrap() == 1).then_some(())
    })
    .await;
    // `coordinator status` shows the platform's errors and the latest one, from the heartbeats.
    let status = wait_for("the worker's errors in the status", WAIT, || async {
        let out = run_ok(Command::new(bin("coordinator")).args(["--namespace", world.ns.as_str(), "status", &run_id]));
        out.lines().any(|l| l.starts_with("aws") && l.trim_end().ends_with(" 3")).then_some(out)
    })
    .await;
    let recent = status.lines().skip_while(|l| *l != "recent errors:").nth(1).unwrap_or_default().to_owned();
    assert!(recent.trim_start().starts_with("aws") && recent.contains(&format!("batch {run_id}/0/aws/0: ")), "{status}");
    let stats = finish(worker).await;
    assert_eq!((stats.failed, stats.returned, stats.done), (1, 2, 0), "returned twice, given up on the third delivery");

    // Running the run again retries the failed batch, once the bucket is back.
    std::fs::create_dir(&bucket).unwrap();
    assert_eq!(world.start(&run_id).await.published, 1);
    let worker = spawn_worker(&world.ns, "aws", &world.data, &bucket, world.state.clone());
    wait_for("the retried batch to be done", WAIT, || async { (world.count(&run_id, BatchState::Done).await == 1).then_some(()) }).await;
    finish(worker).await;
    world.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_the_batch_in_hand_finish_then_the_worker_exits_cleanly() {
    let world = World::new("sigterm", 600, 64 * 1024, 300, &["aws"]).await;
    let run_id = unique("run");
    world.start(&run_id).await;
    let collector = world.collector();
    let mut worker = world.worker_process("aws", &["--concurrency", "1", "--grace-secs", "60"]);
    let mut worker = Child(worker.stderr(std::process::Stdio::piped()).spawn().unwrap());
    wait_for("the worker to start a batch", WAIT, || async { (world.count(&run_id, BatchState::Running).await == 1).then_some(()) }).await;
    assert!(Command::new("kill").args(["-TERM", &worker.0.id().to_string()]).status().unwrap().success());
    let exited = wait_for("the worker to exit", WAIT, || {
        let status = worker.0.try_wait().unwrap();
        async move { status }
    })
    .await;
    assert!(exited.success(), "clean exit after SIGTERM");
    let mut stderr = String::new();
    std::io::Read::read_to_string(worker.0.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(stderr.contains("worker stopped: 1 done"), "finished the batch in hand, took no other: {stderr}");
    assert_eq!((world.count(&run_id, BatchState::Done).await, world.count(&run_id, BatchState::Queued).await), (1, 1));
    wait_for("the finished batch's metrics", WAIT, || async { (world.stored(&run_id) == 1).then_some(()) }).await;
    finish(collector).await;
    world.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_ride_out_a_redis_restart_and_the_run_completes() {
    let mut redis = PrivateRedis::start();
    let ns = namespace("redis-restart");
    let state: Arc<dyn RunStore> = Arc::new(control::RedisStore::connect(&redis.url(), ns.clone()).await.unwrap());
    let world = World::with_state(ns, state, 200, 32 * 1024, 5, &["aws"]).await;
    let run_id = unique("run");
    world.start(&run_id).await;
    let collector = world.collector();
    let worker = world.worker("aws");
    wait_for("a few batches done", WAIT, || async { (world.stored(&run_id) >= 5).then_some(()) }).await;
    redis.kill();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    redis.restart();
    wait_for("every batch done after the restart", WAIT, || async {
        (world.count(&run_id, BatchState::Done).await == 40 && world.stored(&run_id) == 40).then_some(())
    })
    .await;
    let stats = finish(worker).await;
    assert_eq!(finish(collector).await.stored, 40, "no metrics lost or counted twice");
    assert!(stats.done >= 40, "{stats:?}");
    world.cleanup().await;
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
    let world = World::new("amqp-drop", 100, 16 * 1024, 5, &["aws"]).await;
    let collector = world.collector();
    let name = unique("dropped-worker");
    let worker = spawn_named_worker(&world.ns, "aws", &world.data, &world.bucket("bucket"), world.state.clone(), &name);
    for (i, run_id) in [unique("before"), unique("after")].iter().enumerate() {
        if i == 1 {
            // The broker closes the worker's connection between the two runs: the second run's jobs
            // are served only if the worker reconnects.
            assert_eq!(close_connections(&name), 1);
        }
        world.start(run_id).await;
        wait_for("every batch of the run done and stored", WAIT, || async {
            (world.count(run_id, BatchState::Done).await == 20 && world.stored(run_id) == 20).then_some(())
        })
        .await;
    }
    let stats = finish(worker).await;
    assert_eq!((stats.reconnects, stats.done), (1, 40), "{stats:?}");
    assert_eq!(finish(collector).await.stored, 40);
    world.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_killed_mid_run_and_restarted_stores_every_batch_once() {
    let world = World::new("collector-kill", 600, 32 * 1024, 4, &["aws"]).await;
    let run_id = unique("run");
    world.start(&run_id).await;
    let store_dir = world.dir.path().join("collector-store");
    let collector = || {
        let mut cmd = Command::new(bin("analyzer"));
        cmd.args(["collect", "--namespace", world.ns.as_str(), "--until-complete", &run_id, "--store"])
            .arg(&store_dir)
            .env("AMQP_URL", amqp_url())
            .env("REDIS_URL", redis_url())
            .stderr(std::process::Stdio::null());
        Child(cmd.spawn().unwrap())
    };
    let stored = || analyzer::store::MetricsStore::open(&store_dir).unwrap().read(&run_id).unwrap();
    let mut first = collector();
    let worker = world.worker("aws");
    wait_for("some metrics stored", WAIT, || {
        let n = stored().len();
        async move { (n >= 5).then_some(()) }
    })
    .await;
    first.0.kill().unwrap(); // SIGKILL, possibly between storing a record and acknowledging it
    first.0.wait().unwrap();
    assert!(stored().len() < 150, "killed in the middle of the run");
    let mut second = collector();
    let exited = wait_for("the restarted collector to finish the run", WAIT, || {
        let status = second.0.try_wait().unwrap();
        async move { status }
    })
    .await;
    assert!(exited.success());
    let records = stored();
    let mut keys: Vec<&str> = records.iter().map(|m| m.job_key.as_str()).collect();
    keys.sort();
    keys.dedup();
    assert_eq!((records.len(), keys.len()), (150, 150), "every batch stored exactly once");
    finish(worker).await;
    world.cleanup().await;
}

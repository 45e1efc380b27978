//! An accelerated stability run with the binaries against the real services: `coordinator schedule`
//! publishes a round every 3 s; while no worker runs, the rounds that come due are skipped (and said
//! so) instead of piling up; the coordinator is killed and started again mid-schedule and resumes the
//! same schedule; every published round completes and each job key is collected once. And a run on a
//! RabbitMQ node and a Redis server of the test's own, both restarted while rounds are in flight.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::*;
use control::Broker;

/// `coordinator schedule SPEC --every EVERY --for DURATION`, its output lines sent to a channel.
fn schedule_with(ns: &str, spec: &std::path::Path, every: &str, duration: &str, services: &[(&str, String)]) -> (Child, mpsc::Receiver<String>) {
    let mut cmd = Command::new(bin("coordinator"));
    cmd.args(["--namespace", ns, "schedule"]).arg(spec).args(["--every", every, "--for", duration]).stdout(Stdio::piped()).stderr(Stdio::null());
    with_cloud_env(&mut cmd).envs(services.iter().map(|(k, v)| (k, v)));
    let mut child = Child(cmd.spawn().unwrap());
    let stdout = child.0.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || BufReader::new(stdout).lines().map_while(Result::ok).for_each(|l| drop(tx.send(l))));
    (child, rx)
}

/// Starts `coordinator schedule` (a round every 3 s for 18 s) and returns it with its output lines.
fn schedule(ns: &str, spec: &std::path::Path) -> (Child, mpsc::Receiver<String>) {
    schedule_with(ns, spec, "3s", "18s", &[])
}

fn next(lines: &mpsc::Receiver<String>, what: &str) -> String {
    lines.recv_timeout(Duration::from_secs(60)).unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_rounds_skip_while_behind_resume_after_a_restart_and_count_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = |p: &str| dir.path().join(p);
    let ns = namespace("stability");
    let run_id = unique("stability");
    local_run(dir.path(), &run_id, 16, 20_000);
    let mut collector = start_collector(&ns, &run_id, &path("store"));

    let (coordinator, lines) = schedule(ns.as_str(), &path("run.toml"));
    assert_eq!(next(&lines, "the plan"), format!("run {run_id}: 6 rounds, one every 3 s"));
    assert_eq!(next(&lines, "round 0"), "round 0: published 4");
    // No worker yet: round 0 stays queued, so the next two rounds are skipped rather than stacked.
    for round in [1, 2] {
        let line = next(&lines, "a skipped round");
        assert_eq!(line, format!("round {round}: skipped: 4 batches of earlier rounds are still queued or running"));
    }
    let _worker = Child(local_worker(&ns, &path("data"), &path("bucket")).spawn().unwrap());
    assert_eq!(next(&lines, "round 3"), "round 3: published 4");

    // The coordinator dies; started again, it keeps the same clock and publishes nothing twice.
    drop(coordinator);
    let (_coordinator, lines) = schedule(ns.as_str(), &path("run.toml"));
    assert_eq!(next(&lines, "the plan again"), format!("run {run_id}: 6 rounds, one every 3 s"));
    for round in 0..4 {
        assert_eq!(next(&lines, "a handled round"), format!("round {round}: handled before"));
    }
    assert_eq!(next(&lines, "round 4"), "round 4: published 4");
    assert_eq!(next(&lines, "round 5"), "round 5: published 4");
    assert_eq!(next(&lines, "the end"), format!("run {run_id}: schedule over, 6 rounds, 0 skipped"));

    wait_collected(&mut collector, Duration::from_secs(60)).await;
    let rows = export_rows(&run_id, &path("store"));
    let keys: std::collections::BTreeSet<&str> = rows.iter().map(|r| r["job_key"].as_str().unwrap()).collect();
    assert_eq!((rows.len(), keys.len()), (16, 16), "four published rounds of four batches, each once");
    let rounds: std::collections::BTreeSet<u64> = rows.iter().map(|r| r["round"].as_u64().unwrap()).collect();
    assert_eq!(rounds.into_iter().collect::<Vec<_>>(), [0, 3, 4, 5]);
    let status: serde_json::Value = serde_json::from_str(&run_ok(Command::new(bin("coordinator")).args(["--namespace", ns.as_str(), "status", &run_id, "--json"]))).unwrap();
    assert_eq!(status["complete"], true, "{status}");

    let broker = broker().await;
    broker.delete(&ns, &["local".into()]).await.unwrap();
    broker.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schedule_rides_out_a_broker_restart_and_a_redis_restart_and_counts_every_batch_once() {
    let mut rabbit = PrivateRabbit::start();
    let mut redis = PrivateRedis::start();
    let services = [("AMQP_URL", rabbit.url()), ("REDIS_URL", redis.url())];
    let dir = tempfile::tempdir().unwrap();
    let path = |p: &str| dir.path().join(p);
    let ns = namespace("restarts");
    let run_id = unique("restarts");
    local_run(dir.path(), &run_id, 12, 20_000);
    let mut collector = Child(collector_command(&ns, &run_id, &path("store")).envs(services.clone()).spawn().unwrap());
    let _workers: Vec<Child> =
        (0..2).map(|i| Child(local_worker(&ns, &path("data"), &path(&format!("bucket{i}"))).envs(services.clone()).spawn().unwrap())).collect();

    // 20 rounds of 3 batches, one every 2 s. The broker restarts after round 2 is published (rounds
    // that come due while round 2 cannot finish are skipped); Redis restarts after the first round
    // published once the broker is back.
    let (_coordinator, lines) = schedule_with(ns.as_str(), &path("run.toml"), "2s", "40s", &services);
    assert_eq!(next(&lines, "the plan"), format!("run {run_id}: 20 rounds, one every 2 s"));
    let mut said = Vec::new();
    let mut after_redis = 0;
    let summary = loop {
        let line = next(&lines, "the next round");
        if line.starts_with(&format!("run {run_id}: schedule over")) {
            break line;
        }
        said.push(line.clone());
        let published = said.iter().filter(|l| l.ends_with(": published 3")).count();
        if line.ends_with(": published 3") {
            match published {
                3 => rabbit.restart(),
                4 => {
                    redis.kill();
                    tokio::time::sleep(Duration::from_millis(1500)).await;
                    redis.restart();
                }
                5.. => after_redis += 1,
                _ => {}
            }
        }
    };
    eprintln!("{}", said.join("\n"));
    let published: std::collections::BTreeSet<u64> =
        said.iter().filter_map(|l| l.strip_suffix(": published 3")?.strip_prefix("round ")?.parse().ok()).collect();
    let skipped = said.iter().filter(|l| l.contains(": skipped: ")).count();
    assert_eq!(published.len() + skipped, 20, "every round published or skipped, once: {said:?}");
    assert!(after_redis >= 1, "rounds are published again after both restarts: {said:?}");
    assert!(summary.ends_with(&format!("20 rounds, {skipped} skipped")), "{summary}");

    wait_collected(&mut collector, Duration::from_secs(120)).await;
    let rows = export_rows(&run_id, &path("store"));
    let keys: std::collections::BTreeSet<&str> = rows.iter().map(|r| r["job_key"].as_str().unwrap()).collect();
    assert_eq!((rows.len(), keys.len()), (3 * published.len(), 3 * published.len()), "every batch of every published round, each once");
    let rounds: std::collections::BTreeSet<u64> = rows.iter().map(|r| r["round"].as_u64().unwrap()).collect();
    assert_eq!(rounds, published);
    let status = Command::new(bin("coordinator")).args(["--namespace", ns.as_str(), "status", &run_id, "--json"]).envs(services.clone()).output().unwrap();
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status["complete"], true, "{status}");
}

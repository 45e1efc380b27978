//! An accelerated stability run with the binaries against the real services: `coordinator schedule`
//! publishes a round every 3 s; while no worker runs, the rounds that come due are skipped (and said
//! so) instead of piling up; the coordinator is killed and started again mid-schedule and resumes the
//! same schedule; every published round completes and each job key is collected once.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::*;
use control::Broker;

/// Starts `coordinator schedule` and returns it with a channel of its output lines.
fn schedule(ns: &str, spec: &std::path::Path) -> (Child, mpsc::Receiver<String>) {
    let mut cmd = Command::new(bin("coordinator"));
    cmd.args(["--namespace", ns, "schedule"]).arg(spec).args(["--every", "3s", "--for", "18s"]).stdout(Stdio::piped()).stderr(Stdio::null());
    let mut child = Child(with_cloud_env(&mut cmd).spawn().unwrap());
    let stdout = child.0.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || BufReader::new(stdout).lines().map_while(Result::ok).for_each(|l| drop(tx.send(l))));
    (child, rx)
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
    dataset(&path("data"), 16, 20_000);
    std::fs::create_dir_all(path("bucket")).unwrap();
    std::fs::write(path("run.toml"), format!("run_id = \"{run_id}\"\nmanifest = \"data/manifest.json\"\nbatch_size = 4\n[[platform]]\nname = \"local\"\n")).unwrap();
    let mut collector = start_collector(&ns, &run_id, &path("store"));

    let (coordinator, lines) = schedule(ns.as_str(), &path("run.toml"));
    assert_eq!(next(&lines, "the plan"), format!("run {run_id}: 6 rounds, one every 3 s"));
    assert_eq!(next(&lines, "round 0"), "round 0: published 4");
    // No worker yet: round 0 stays queued, so the next two rounds are skipped rather than stacked.
    for round in [1, 2] {
        let line = next(&lines, "a skipped round");
        assert_eq!(line, format!("round {round}: skipped: 4 batches of earlier rounds are still queued or running"));
    }
    let mut cmd = Command::new(bin("worker"));
    cmd.args(["--namespace", ns.as_str(), "--platform", "local", "--heartbeat-secs", "1"])
        .arg("--dataset-dir")
        .arg(path("data"))
        .arg("--storage-dir")
        .arg(path("bucket"))
        .stderr(Stdio::null());
    let _worker = Child(with_cloud_env(&mut cmd).spawn().unwrap());
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

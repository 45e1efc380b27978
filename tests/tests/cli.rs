//! The README's distributed run, step by step, with the built binaries only: dataset, spec, workers,
//! collector, run, status, export and report.

mod common;

use std::process::{Command, Stdio};

use common::*;
use control::Broker;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_run_works_end_to_end_with_the_binaries() {
    let dir = tempfile::tempdir().unwrap();
    let path = |p: &str| dir.path().join(p);
    let ns = namespace("cli");
    let run_id = unique("readme");
    run_ok(Command::new(bin("coordinator")).args(["dataset", "synth", "--count", "24", "--out"]).arg(path("data")));
    std::fs::write(path("run.toml"), format!("run_id = \"{run_id}\"\nmanifest = \"data/manifest.json\"\nbatch_size = 4\n[[platform]]\nname = \"fast\"\n[[platform]]\nname = \"durable\"\n")).unwrap();
    for bucket in ["bucket-fast", "bucket-durable"] {
        std::fs::create_dir(path(bucket)).unwrap();
    }
    let worker = |platform: &str, extra: &[&str]| {
        let mut cmd = Command::new(bin("worker"));
        cmd.args(["--namespace", ns.as_str(), "--platform", platform, "--dataset-dir"])
            .arg(path("data"))
            .arg("--storage-dir")
            .arg(path(&format!("bucket-{platform}")))
            .args(extra)
            .env("AMQP_URL", amqp_url())
            .env("REDIS_URL", redis_url())
            .stderr(Stdio::null());
        Child(cmd.spawn().unwrap())
    };
    let _workers = [worker("fast", &[]), worker("durable", &["--durable"])];
    let started = run_ok(Command::new(bin("coordinator")).args(["--namespace", ns.as_str(), "run"]).arg(path("run.toml")));
    assert!(started.contains("created: 12 batches, published 12"), "{started}");
    run_ok(Command::new(bin("analyzer"))
        .args(["collect", "--namespace", ns.as_str(), "--until-complete", &run_id, "--store"])
        .arg(path("store"))
        .stderr(Stdio::null()));
    let status = run_ok(Command::new(bin("coordinator")).args(["--namespace", ns.as_str(), "status", &run_id, "--json"]));
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!((status["complete"].as_bool(), status["platforms"]["fast"]["done"].as_u64()), (Some(true), Some(6)));

    let csv = run_ok(Command::new(bin("analyzer")).args(["export", "--run", &run_id, "--store"]).arg(path("store")));
    assert_eq!(csv.lines().count(), 13, "a header and one row per batch");
    run_ok(Command::new(bin("analyzer"))
        .args(["report", "--namespace", ns.as_str(), "--run", &run_id, "--store"])
        .arg(path("store"))
        .arg("--out")
        .arg(path("report")));
    let report = std::fs::read_to_string(path("report/report.md")).unwrap();
    assert!(report.contains(&format!("run {run_id}")) && report.contains("| fast | 6 |") && report.contains("batch_size = 4"), "{report}");
    assert!(std::fs::read_to_string(path("report/report.html")).unwrap().contains("<svg"));
    serde_json::from_str::<serde_json::Value>(&std::fs::read_to_string(path("report/report.json")).unwrap()).unwrap();

    let broker = broker().await;
    broker.delete(&ns, &["fast".into(), "durable".into()]).await.unwrap();
    broker.close().await;
}

#[test]
fn a_binary_that_outlives_its_deadline_is_killed_and_fails_its_test() {
    let started = std::time::Instant::now();
    let caught = std::panic::catch_unwind(|| run_ok_within(std::process::Command::new("sleep").arg("60"), std::time::Duration::from_millis(500)));
    let message = caught.expect_err("a process past its deadline fails the test");
    let text = message.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(text.contains("still running after 500ms: killed"), "{text}");
    assert!(started.elapsed() < std::time::Duration::from_secs(10), "killed at its deadline, not waited for");
}

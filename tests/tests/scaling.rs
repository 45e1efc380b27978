//! A scaling run with the binaries against the real services: one stage at 1 worker process and one
//! at 3, the coordinator waiting for each stage's workers before publishing it; every batch collected
//! once, and the report's scaling table with the efficiency figure.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::*;
use control::Broker;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scaling_run_measures_each_stage_at_its_worker_count() {
    let dir = tempfile::tempdir().unwrap();
    let path = |p: &str| dir.path().join(p);
    let ns = namespace("scaling");
    let run_id = unique("scaling");
    dataset(&path("data"), 48, 30_000);
    std::fs::write(
        path("run.toml"),
        format!(
            "run_id = \"{run_id}\"\nmanifest = \"data/manifest.json\"\nbatch_size = 4\n[[platform]]\nname = \"local\"\n[scaling]\nworkers = [1, 3]\nwait_secs = 120\n"
        ),
    )
    .unwrap();
    let worker = |n: usize| {
        Child(local_worker(&ns, &path("data"), &path(&format!("bucket{n}"))).args(["--worker-id", &format!("scaling-w{n}")]).spawn().unwrap())
    };
    let mut collector = start_collector(&ns, &run_id, &path("store"));

    let mut workers = vec![worker(1)];
    let mut run = Command::new(bin("coordinator"));
    run.args(["--namespace", ns.as_str(), "run"]).arg(path("run.toml")).stdout(Stdio::piped()).stderr(Stdio::null());
    let mut coordinator = Child(with_cloud_env(&mut run).spawn().unwrap());
    let (lines_tx, lines) = mpsc::channel();
    let stdout = coordinator.0.stdout.take().unwrap();
    std::thread::spawn(move || BufReader::new(stdout).lines().map_while(Result::ok).for_each(|l| drop(lines_tx.send(l))));
    let mut said = Vec::new();
    let mut next_line = |what: &str| {
        let line = lines.recv_timeout(Duration::from_secs(120)).unwrap_or_else(|_| panic!("timed out waiting for {what}; said so far: {said:?}"));
        said.push(line.clone());
        line
    };
    assert_eq!(next_line("stage 0 to wait"), "stage 0: waiting for 1 workers per platform");
    let started = next_line("stage 0 to start");
    assert!(started.starts_with("stage 0: started with local=1 live (asked 1 per platform); published 12"), "{started}");
    assert!(next_line("stage 0 to finish").starts_with("stage 0: finished in"));
    assert_eq!(next_line("stage 1 to wait"), "stage 1: waiting for 3 workers per platform");
    workers.push(worker(2));
    workers.push(worker(3));
    let started = next_line("stage 1 to start");
    assert!(started.starts_with("stage 1: started with local=3 live (asked 3 per platform); published 12"), "{started}");
    assert!(next_line("stage 1 to finish").starts_with("stage 1: finished in"));
    assert_eq!(next_line("the summary"), format!("run {run_id}: 2 stages done, 0 started short"));

    wait_collected(&mut collector, Duration::from_secs(60)).await;
    let rows = export_rows(&run_id, &path("store"));
    assert_eq!(rows.len(), 24, "every batch of both stages collected exactly once");
    let stage0: std::collections::BTreeSet<&str> = rows.iter().filter(|r| r["round"] == 0).map(|r| r["worker_id"].as_str().unwrap()).collect();
    assert_eq!(stage0.into_iter().collect::<Vec<_>>(), ["scaling-w1"], "stage 0 ran on its one worker");

    run_ok(Command::new(bin("analyzer")).args(["report", "--run", &run_id, "--store"]).arg(path("store")).arg("--out").arg(path("report")));
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path("report/report.json")).unwrap()).unwrap();
    let scaling = report["scaling"].as_array().unwrap();
    assert_eq!(scaling.len(), 2, "{report}");
    assert_eq!((scaling[0]["workers"].as_u64(), scaling[0]["efficiency"].as_f64()), (Some(1), Some(1.0)));
    assert!(scaling[1]["workers"].as_u64().unwrap() >= 2 && scaling[1]["efficiency"].as_f64().unwrap() > 0.0, "{scaling:?}");
    let markdown = std::fs::read_to_string(path("report/report.md")).unwrap();
    assert!(markdown.contains("## Scaling") && markdown.contains("efficiency"), "{markdown}");
    eprintln!("{}", scaling.iter().map(|s| format!("{} workers: {} images/s, efficiency {}", s["workers"], s["images_per_second"], s["efficiency"])).collect::<Vec<_>>().join("; "));

    drop(workers);
    let broker = broker().await;
    broker.delete(&ns, &["local".into()]).await.unwrap();
    broker.close().await;
}

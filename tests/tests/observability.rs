//! What an operator watches: the coordinator's, the worker's and the collector's Prometheus
//! `/metrics` (behind a bearer token), and JSON log lines, from the binaries during a real run.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use control::Broker;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// `GET /metrics` on `port`, with a bearer token when given; the whole answer, head and body.
async fn scrape(port: u16, token: Option<&str>) -> Option<String> {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok()?;
    let auth = token.map(|t| format!("authorization: Bearer {t}\r\n")).unwrap_or_default();
    // One request per connection: asked to close after it, so that the answer ends at EOF.
    s.write_all(format!("GET /metrics HTTP/1.1\r\nhost: localhost\r\n{auth}connection: close\r\n\r\n").as_bytes()).await.ok()?;
    let mut out = String::new();
    tokio::time::timeout(std::time::Duration::from_secs(10), s.read_to_string(&mut out)).await.ok()?.ok()?;
    Some(out)
}

/// Every metric a panel of the Grafana dashboard (`deploy/grafana/cloudbench.json`) queries is one
/// that the coordinator, worker or collector exported in this run (a sample or a declared family),
/// so that the dashboard cannot drift from the code.
fn dashboard_queries_what_the_processes_export(scraped: &[&str]) {
    let exported: std::collections::BTreeSet<&str> = scraped
        .iter()
        .flat_map(|body| body.lines())
        .filter_map(|line| match line.strip_prefix("# TYPE ") {
            Some(rest) => rest.split(' ').next(),
            None if line.starts_with("cloudbench_") => line.split(['{', ' ']).next(),
            None => None,
        })
        .collect();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/grafana/cloudbench.json");
    let dashboard: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let panels = dashboard["panels"].as_array().unwrap();
    assert!(panels.len() >= 10, "{} panels", panels.len());
    let mut queried = std::collections::BTreeSet::new();
    for target in panels.iter().flat_map(|p| p["targets"].as_array().unwrap()) {
        let expr = target["expr"].as_str().unwrap();
        let mut rest = expr;
        while let Some(at) = rest.find("cloudbench_") {
            let name: String = rest[at..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            rest = &rest[at + name.len()..];
            queried.insert(name);
        }
    }
    // A histogram is exported as NAME (its TYPE line) and queried as NAME_bucket, _sum or _count.
    let known = |name: &str| {
        exported.contains(name) || ["_bucket", "_sum", "_count"].iter().any(|s| name.strip_suffix(s).is_some_and(|base| exported.contains(base)))
    };
    let missing: Vec<&String> = queried.iter().filter(|n| !known(n)).collect();
    assert!(missing.is_empty(), "the dashboard queries metrics no process exports: {missing:?} (exported: {exported:?})");
    for family in ["cloudbench_coordinator_batches", "cloudbench_worker_phase_seconds_bucket", "cloudbench_worker_request_seconds_bucket", "cloudbench_worker_errors_total", "cloudbench_worker_retries_total", "cloudbench_collector_messages_total"] {
        assert!(queried.contains(family), "the dashboard has no panel on {family}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coordinator_worker_and_collector_serve_live_metrics_and_log_json() {
    let dir = tempfile::tempdir().unwrap();
    let path = |p: &str| dir.path().join(p);
    let ns = namespace("observe");
    let run_id = unique("observe");
    local_run(dir.path(), &run_id, 16, 25_000);
    let (worker_port, collector_port) = (free_port(), free_port());
    let log = std::fs::File::create(path("worker.log")).unwrap();
    let mut cmd = Command::new(bin("analyzer"));
    cmd.args(["collect", "--namespace", ns.as_str(), "--metrics-addr", &format!("127.0.0.1:{collector_port}"), "--store"]).arg(path("store")).stderr(Stdio::null());
    let _collector = Child(with_cloud_env(&mut cmd).spawn().unwrap());
    // The coordinator follows the run and serves its metrics; with no worker yet, every job waits.
    let coordinator_port = free_port();
    let mut cmd = Command::new(bin("coordinator"));
    cmd.args(["--namespace", ns.as_str(), "--metrics-addr", &format!("127.0.0.1:{coordinator_port}"), "run", "--watch"])
        .arg(path("run.toml"))
        .env("CLOUDBENCH_METRICS_TOKEN", "observe-token")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut coordinator = Child(with_cloud_env(&mut cmd).spawn().unwrap());
    let waiting = wait_for("the coordinator's metrics to show 4 queued jobs", Duration::from_secs(60), || async move {
        scrape(coordinator_port, Some("observe-token")).await.filter(|m| m.contains("cloudbench_coordinator_queue_depth{platform=\"local\"} 4"))
    })
    .await;
    for expected in [
        "cloudbench_coordinator_batches{platform=\"local\",state=\"queued\"} 4",
        "cloudbench_coordinator_batches{platform=\"local\",state=\"done\"} 0",
        "cloudbench_coordinator_workers{platform=\"local\",state=\"live\"} 0",
        "cloudbench_coordinator_run_complete 0",
    ] {
        assert!(waiting.contains(expected), "{expected} missing from:\n{waiting}");
    }
    assert!(scrape(coordinator_port, None).await.unwrap().starts_with("HTTP/1.1 401"));
    let _worker = Child(
        local_worker(&ns, &path("data"), &path("bucket"))
            .args(["--metrics-addr", &format!("127.0.0.1:{worker_port}")])
            .env("CLOUDBENCH_LOG_FORMAT", "json")
            .env("CLOUDBENCH_METRICS_TOKEN", "observe-token")
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap(),
    );
    let exited = wait_for("the coordinator to see the run complete", Duration::from_secs(60), || {
        let status = coordinator.0.try_wait().unwrap();
        async move { status }
    })
    .await;
    assert!(exited.success());

    let collected = wait_for("the collector's metrics to count 4 stored", Duration::from_secs(60), || async move {
        scrape(collector_port, None).await.filter(|m| m.contains("cloudbench_collector_messages_total{outcome=\"stored\"} 4"))
    })
    .await;
    assert!(collected.contains("cloudbench_collector_broker_connects_total ") && collected.contains("cloudbench_collector_queue_depth "), "{collected}");
    let worker = wait_for("the worker's metrics to count 4 jobs done", Duration::from_secs(30), || async move {
        scrape(worker_port, Some("observe-token")).await.filter(|m| m.contains("cloudbench_worker_jobs_total{outcome=\"done\"} 4"))
    })
    .await;
    for expected in [
        "cloudbench_worker_phase_seconds_count{phase=\"upload\"} 4",
        "cloudbench_worker_phase_seconds_count{phase=\"download\"} 4",
        "cloudbench_worker_requests_total{phase=\"upload\"} 16",
        "cloudbench_worker_request_seconds_count{phase=\"upload\"} 16",
        "cloudbench_worker_request_seconds_count{phase=\"download\"} 16",
        "cloudbench_worker_images_total 16",
        "cloudbench_worker_bytes_total{phase=\"upload\"} 400000",
        "cloudbench_worker_busy 0",
    ] {
        assert!(worker.contains(expected), "{expected} missing from:\n{worker}");
    }
    let refused = scrape(worker_port, None).await.unwrap();
    assert!(refused.starts_with("HTTP/1.1 401"), "{refused}");
    dashboard_queries_what_the_processes_export(&[&waiting, &collected, &worker]);

    let logs = std::fs::read_to_string(path("worker.log")).unwrap();
    let lines: Vec<serde_json::Value> = logs.lines().filter(|l| !l.trim().is_empty()).map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l}"))).collect();
    assert!(lines.iter().any(|l| l["fields"]["message"] == "batch done" && l["level"] == "INFO"), "{logs}");
    assert!(!logs.contains("observe-token"));

    let broker = broker().await;
    broker.delete(&ns, &["local".into()]).await.unwrap();
    broker.close().await;
}

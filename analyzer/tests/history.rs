//! `analyzer history` over a store of 30 seeded runs, one day apart, whose aws upload time steps up
//! 30% at run 20, when the git commit changes, and with one odd run (8) whose azure download time is
//! doubled: the step is dated at run 20 ± 1 and named with its commit; the odd run is no change.

mod common;

use analyzer::history::{Options, history};
use analyzer::store::MetricsStore;
use common::{PAPERLIKE, Profile};
use prost::Message;
use proto::v1::BatchMetrics;

const DAY_NS: i64 = 86_400_000_000_000;

fn runs() -> Vec<(String, Vec<BatchMetrics>)> {
    (0..30u32)
        .map(|i| {
            let [aws, azure] = PAPERLIKE;
            let aws = Profile { upload: aws.upload * if i >= 20 { 1.3 } else { 1.0 }, ..aws };
            let azure = Profile { download: azure.download * if i == 8 { 2.0 } else { 1.0 }, ..azure };
            let run = format!("nightly-{i:02}");
            let mut metrics = common::metrics(&run, &[aws, azure], 40, 1, 1000 + u64::from(i));
            for m in &mut metrics {
                m.started_unix_ns += i64::from(i) * DAY_NS;
                m.finished_unix_ns += i64::from(i) * DAY_NS;
                m.versions.as_mut().unwrap().git_commit = if i >= 20 { "c0ffee2".into() } else { "c0ffee1".into() };
            }
            (run, metrics)
        })
        .collect()
}

#[test]
fn a_step_is_dated_and_tied_to_its_commit_and_one_odd_run_is_no_change() {
    let h = history(&runs(), &Options::default());
    assert_eq!(h.runs, 30);
    for s in &h.series {
        assert_eq!(s.points.len(), 30, "{} {}", s.platform, s.metric);
        if (s.platform.as_str(), s.metric) == ("aws", "upload") {
            assert_eq!(s.changes.len(), 1, "{:?}", s.changes);
            let c = &s.changes[0];
            assert!((19..=21).contains(&c.index), "dated at run {}", c.index);
            assert!(c.came_with.iter().any(|w| w == "git commit c0ffee1 → c0ffee2"), "{:?}", c.came_with);
            assert!((c.after_median / c.before_median - 1.3).abs() < 0.1, "{c:?}");
        } else {
            assert!(s.changes.is_empty(), "{} {}: {:?}", s.platform, s.metric, s.changes);
        }
    }
    // Filters: a platform, a date range.
    let aws_only = history(&runs(), &Options { platforms: vec!["aws".into()], ..Options::default() });
    assert!(aws_only.series.iter().all(|s| s.platform == "aws"));
    let first_day = 1_700_000_000;
    let early = history(&runs(), &Options { until: Some(first_day + 10 * 86_400), ..Options::default() });
    assert_eq!(early.runs, 10);
}

#[test]
fn the_cli_writes_the_history_and_names_the_change() {
    let dir = tempfile::tempdir().unwrap();
    let store_dir = dir.path().join("store");
    let mut store = MetricsStore::open(&store_dir).unwrap();
    for (_, metrics) in runs() {
        for m in metrics {
            let payload = m.encode_to_vec();
            let (key, _) = proto::validate::batch_metrics(&payload).unwrap();
            store.append(&key, &payload).unwrap();
        }
    }
    let out = dir.path().join("history");
    let result = std::process::Command::new(env!("CARGO_BIN_EXE_analyzer"))
        .args(["history", "--store", &store_dir.display().to_string(), "--out", &out.display().to_string()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&result.stdout);
    assert!(result.status.success(), "{stdout}{}", String::from_utf8_lossy(&result.stderr));
    assert!(stdout.contains("aws Upload time: changed at run nightly-2") && stdout.contains("git commit c0ffee1 → c0ffee2"), "{stdout}");
    assert!(stdout.contains("history of 30 runs"), "{stdout}");
    let html = std::fs::read_to_string(out.join("history.html")).unwrap();
    assert!(html.contains("<svg") && html.contains("Upload time per run"));
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("history.json")).unwrap()).unwrap();
    assert_eq!(json["min_segment"], 3);
}

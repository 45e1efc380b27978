//! `analyzer compare` and `analyzer merge` on stores of seeded synthetic runs whose differences are
//! programmed: a platform made 20% slower in one phase must be found slower, with a significant p,
//! and nothing else; runs of one setup under different seeds must show no change.

mod common;

use analyzer::compare::{Options, Verdict, compare};
use analyzer::rows::BatchRow;
use analyzer::store::MetricsStore;
use common::{PAPERLIKE, Profile};
use prost::Message;

fn rows(run: &str, profiles: &[Profile], seed: u64, batches: u32) -> (String, Vec<BatchRow>) {
    (run.to_owned(), common::metrics(run, profiles, batches, 1, seed).iter().map(BatchRow::from_metrics).collect())
}

/// The paper-like platforms with aws's upload `factor` times slower.
fn slower_upload(factor: f64) -> [Profile; 2] {
    let [aws, azure] = PAPERLIKE;
    [Profile { upload: aws.upload * factor, ..aws }, azure]
}

#[test]
fn a_platform_made_slower_is_found_slower_and_nothing_else_changes() {
    // 400 batches: each median's relative standard error is 1 / (2 × 2.5 × √400) = 1%, for the
    // generator's uniform ±20% noise (density 2.5), so the change's is about 1.2 × √2 × 1% = 1.7%.
    let runs = [rows("before", &PAPERLIKE, 1, 400), rows("after", &slower_upload(1.2), 2, 400)];
    let c = compare(&runs, &Options::default()).unwrap();
    assert_eq!(c.rows.len(), 2 * 5, "2 platforms × 5 metrics");
    for row in &c.rows {
        if (row.platform.as_str(), row.metric) == ("aws", "upload") {
            assert_eq!(row.verdict, Verdict::Worse, "{row:?}");
            assert!(row.p_holm < 1e-6, "{row:?}");
            // The programmed change, +20%, within 4 standard errors, its interval clear of the 5%
            // threshold and no wider than the errors make it.
            let ci = row.change_ci.as_ref().unwrap();
            assert!((row.change - 0.2).abs() < 0.07 && ci.lo > 0.1 && ci.hi < 0.3 && ci.lo < row.change && row.change < ci.hi, "{row:?}");
            assert!(row.cliffs_delta > 0.5, "{row:?}");
        } else {
            assert_eq!(row.verdict, Verdict::NoSignificantChange, "{} {}: {row:?}", row.platform, row.metric);
        }
    }
    assert_eq!(c.regressions().count(), 1);
    // A faster run is better, not worse; and under the threshold nothing gets a verdict.
    let faster = compare(&[rows("before", &PAPERLIKE, 1, 116), rows("after", &slower_upload(0.8), 2, 116)], &Options::default()).unwrap();
    assert_eq!(faster.rows.iter().find(|r| r.platform == "aws" && r.metric == "upload").unwrap().verdict, Verdict::Better);
    let strict = compare(&runs, &Options { min_change: 0.25, ..Options::default() }).unwrap();
    assert_eq!(strict.regressions().count(), 0, "a 20% change is under a 25% threshold");
}

#[test]
fn runs_of_one_setup_show_no_significant_change() {
    // Ten pairs of runs of the same platforms under different seeds, 10 comparisons each. Holm keeps
    // the chance that a pair gets any verdict at most 5%: more than 2 pairs of 10 has a chance of
    // 1.2% (Binomial(10, 0.05)).
    let (mut changed, mut pairs) = (0, 0);
    for pair in 0..10u64 {
        let c = compare(&[rows("a", &PAPERLIKE, 100 + 2 * pair, 116), rows("b", &PAPERLIKE, 101 + 2 * pair, 116)], &Options::default()).unwrap();
        let verdicts: Vec<_> = c.rows.iter().filter(|r| r.verdict != Verdict::NoSignificantChange).collect();
        for r in &verdicts {
            eprintln!("pair {pair}: {} {} {:+.1}% p {:.2e}", r.platform, r.metric, r.change * 100.0, r.p_holm);
        }
        changed += verdicts.len();
        pairs += usize::from(!verdicts.is_empty());
    }
    eprintln!("{changed} of 100 comparisons of identical setups got a verdict, in {pairs} of 10 pairs");
    assert!(pairs <= 2, "{changed} of 100 comparisons of identical setups got a verdict, in {pairs} of 10 pairs");
}

fn write_store(dir: &std::path::Path, run: &str, profiles: &[Profile], seed: u64) {
    let mut store = MetricsStore::open(dir).unwrap();
    for m in common::metrics(run, profiles, 60, 1, seed) {
        let payload = m.encode_to_vec();
        let (key, _) = proto::validate::batch_metrics(&payload).unwrap();
        store.append(&key, &payload).unwrap();
    }
}

fn analyzer(args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_analyzer")).args(args).output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn the_cli_compares_runs_across_stores_and_fails_on_a_regression_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let (one, two) = (dir.path().join("one"), dir.path().join("two"));
    write_store(&one, "before", &PAPERLIKE, 1);
    write_store(&two, "after", &slower_upload(1.3), 2);
    let before = format!("before@{}", one.display());
    let after = format!("after@{}", two.display());
    let out = dir.path().join("cmp");
    let out_s = out.display().to_string();
    // 60 batches a run: a median's standard error is 2.6%, a change's 3.7%, so a threshold of 15%
    // keeps chance changes (azure's upload moves +11.6% between these seeds) from a verdict.
    let (code, stdout, stderr) = analyzer(&["compare", "--run", &before, "--run", &after, "--out", &out_s, "--min-change", "0.15"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("aws Upload time: slower"), "{stdout}");
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("compare.json")).unwrap()).unwrap();
    let worse: Vec<&serde_json::Value> = json["rows"].as_array().unwrap().iter().filter(|r| r["verdict"] == "worse").collect();
    assert_eq!(worse.len(), 1, "{stdout}");
    assert_eq!((worse[0]["platform"].as_str(), worse[0]["metric"].as_str()), (Some("aws"), Some("upload")));
    assert!(std::fs::read_to_string(out.join("compare.md")).unwrap().contains("| after@"));
    assert!(std::fs::read_to_string(out.join("compare.html")).unwrap().contains("<table"));
    let (code, stdout, _) = analyzer(&["compare", "--run", &before, "--run", &after, "--out", &out_s, "--min-change", "0.15", "--fail-on-regression"]);
    assert_eq!(code, 1, "{stdout}");
    let (code, _, stderr) = analyzer(&["compare", "--run", &before, "--run", &format!("missing@{}", two.display()), "--out", &out_s]);
    assert_eq!(code, 1);
    assert!(stderr.contains("no metrics for run missing") && stderr.lines().count() == 1, "{stderr}");

    // Merge the two stores into a third: both runs, every record once.
    let merged = dir.path().join("merged");
    let (code, stdout, stderr) = analyzer(&["merge", "--into", &merged.display().to_string(), &one.display().to_string(), &two.display().to_string()]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("merged 240 records of 2 runs"), "{stdout}");
    let store = MetricsStore::open(&merged).unwrap();
    assert_eq!((store.read("before").unwrap().len(), store.read("after").unwrap().len()), (120, 120));
}

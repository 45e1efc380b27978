//! The statistics against reference values computed independently by SciPy, scikit-posthocs and NumPy
//! (`scripts/stats_fixtures.py` writes `fixtures/stats.json`; this test needs no Python), and the
//! `analyzer stats` binary on the same inputs.

use analyzer::stats::{self, StatsError};
use serde::Deserialize;

#[derive(Deserialize)]
struct Fixtures {
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    groups: Vec<Vec<f64>>,
    /// `None` where SciPy's H is NaN (all values equal): the library must refuse.
    kruskal: Option<KruskalRef>,
    #[serde(default)]
    dunn: Vec<DunnRef>,
    #[serde(default)]
    mann_whitney: Vec<MwuRef>,
    #[serde(default)]
    cliffs_delta: Vec<CliffRef>,
    #[serde(default)]
    descriptives: Vec<DescribeRef>,
}

#[derive(Deserialize)]
struct KruskalRef {
    h: f64,
    df: usize,
    p: f64,
}

#[derive(Deserialize)]
struct DunnRef {
    a: usize,
    b: usize,
    z: f64,
    p: f64,
    p_holm: f64,
}

#[derive(Deserialize)]
struct MwuRef {
    a: usize,
    b: usize,
    u: f64,
    p: f64,
}

#[derive(Deserialize)]
struct CliffRef {
    a: usize,
    b: usize,
    delta: f64,
}

#[derive(Deserialize)]
struct DescribeRef {
    n: usize,
    mean: f64,
    /// NumPy gives NaN for one value; the library defines 0.
    sd: Option<f64>,
    median: f64,
    q1: f64,
    q3: f64,
    min: f64,
    max: f64,
    p5: f64,
    p95: f64,
}

fn fixtures() -> Vec<Case> {
    let f: Fixtures = serde_json::from_str(include_str!("fixtures/stats.json")).expect("fixtures/stats.json parses");
    assert!(f.cases.len() >= 10, "the fixtures hold every case");
    f.cases
}

/// Relative agreement to `rel`, or absolute agreement to `floor` for values near zero (p-values that
/// underflow below 1e-300, statistics that cancel to about 0).
#[track_caller]
fn assert_close(what: &str, actual: f64, expected: f64, rel: f64, floor: f64) {
    let diff = (actual - expected).abs();
    assert!(diff <= rel * expected.abs() || diff <= floor, "{what}: got {actual:e}, reference {expected:e}");
}

const P: (f64, f64) = (1e-9, 1e-300);

fn slices(case: &Case) -> Vec<&[f64]> {
    case.groups.iter().map(Vec::as_slice).collect()
}

#[test]
fn kruskal_matches_scipy() {
    for case in fixtures() {
        let got = stats::kruskal(&slices(&case));
        let Some(reference) = &case.kruskal else {
            assert_eq!(got, Err(StatsError::AllEqual), "{}", case.name);
            continue;
        };
        let got = got.unwrap_or_else(|e| panic!("{}: {e}", case.name));
        assert_eq!(got.df, reference.df, "{}", case.name);
        assert_close(&format!("{} H", case.name), got.h, reference.h, 1e-9, 1e-12);
        assert_close(&format!("{} p", case.name), got.p, reference.p, P.0, P.1);
    }
}

#[test]
fn dunn_holm_matches_scikit_posthocs() {
    for case in fixtures() {
        let got = stats::dunn_holm(&slices(&case));
        if case.kruskal.is_none() {
            assert_eq!(got, Err(StatsError::AllEqual), "{}", case.name);
            continue;
        }
        let got = got.unwrap_or_else(|e| panic!("{}: {e}", case.name));
        assert_eq!(got.len(), case.dunn.len(), "{}", case.name);
        for (g, r) in got.iter().zip(&case.dunn) {
            let what = format!("{} ({}, {})", case.name, r.a, r.b);
            assert_eq!((g.a, g.b), (r.a, r.b), "{what}");
            assert_close(&format!("{what} z"), g.z, r.z, 1e-9, 1e-12);
            assert_close(&format!("{what} p"), g.p, r.p, P.0, P.1);
            assert_close(&format!("{what} p_holm"), g.p_holm, r.p_holm, P.0, P.1);
        }
    }
}

#[test]
fn mann_whitney_matches_scipy_asymptotic() {
    let mut compared = 0;
    for case in fixtures() {
        for r in &case.mann_whitney {
            let got = stats::mann_whitney(&case.groups[r.a], &case.groups[r.b]).unwrap();
            let what = format!("{} ({}, {})", case.name, r.a, r.b);
            assert_eq!(got.u, r.u, "{what} U");
            assert_close(&format!("{what} p"), got.p, r.p, P.0, P.1);
            compared += 1;
        }
    }
    assert!(compared >= 30, "{compared} pairs");
}

#[test]
fn cliffs_delta_matches_the_pairwise_definition() {
    for case in fixtures() {
        for r in &case.cliffs_delta {
            let got = stats::cliffs_delta(&case.groups[r.a], &case.groups[r.b]).unwrap();
            assert_close(&format!("{} ({}, {})", case.name, r.a, r.b), got, r.delta, 0.0, 1e-12);
        }
    }
}

#[test]
fn descriptives_match_numpy() {
    for case in fixtures() {
        for (i, (values, r)) in case.groups.iter().zip(&case.descriptives).enumerate() {
            let d = stats::describe(values).unwrap();
            let what = |field: &str| format!("{} group {i} {field}", case.name);
            assert_eq!(d.n, r.n, "{}", what("n"));
            for (field, got, expected) in [
                ("mean", d.mean, r.mean),
                ("sd", d.sd, r.sd.unwrap_or(0.0)),
                ("median", d.median, r.median),
                ("q1", d.q1, r.q1),
                ("q3", d.q3, r.q3),
                ("iqr", d.iqr, r.q3 - r.q1),
                ("min", d.min, r.min),
                ("max", d.max, r.max),
                ("p5", d.p5, r.p5),
                ("p95", d.p95, r.p95),
            ] {
                assert_close(&what(field), got, expected, 1e-12, 1e-14);
            }
        }
    }
}

/// Runs `analyzer stats` on `csv` and returns (exit status, stdout, stderr).
fn analyzer_stats(csv: Option<&str>, format: &str) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("samples.csv");
    if let Some(csv) = csv {
        std::fs::write(&path, csv).unwrap();
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_analyzer"))
        .args(["stats", "--samples", path.to_str().unwrap(), "--format", format])
        .output()
        .unwrap();
    let text = |b: Vec<u8>| String::from_utf8(b).unwrap();
    (out.status.code().unwrap_or(-1), text(out.stdout), text(out.stderr))
}

#[test]
fn the_stats_command_reports_the_reference_values() {
    let case = fixtures().into_iter().find(|c| c.name == "five_groups_with_singleton").unwrap();
    let mut csv = String::from("group,value\n");
    for (i, values) in case.groups.iter().enumerate() {
        for v in values {
            csv.push_str(&format!("g{i},{v}\n"));
        }
    }
    let (status, stdout, stderr) = analyzer_stats(Some(&csv), "json");
    assert_eq!(status, 0, "{stderr}");
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let kruskal = case.kruskal.as_ref().unwrap();
    assert_close("H", json["kruskal"]["h"].as_f64().unwrap(), kruskal.h, 1e-9, 0.0);
    assert_close("p", json["kruskal"]["p"].as_f64().unwrap(), kruskal.p, 1e-9, 0.0);
    assert_eq!(json["groups"][1]["name"], "g1");
    assert_eq!(json["groups"][1]["n"], 1);
    for (pair, (dunn, mwu)) in json["pairs"].as_array().unwrap().iter().zip(case.dunn.iter().zip(&case.mann_whitney)) {
        assert_eq!(pair["a"], format!("g{}", dunn.a));
        assert_close("Dunn p", pair["dunn_p_holm"].as_f64().unwrap(), dunn.p_holm, 1e-9, 0.0);
        assert_eq!(pair["mwu_u"].as_f64().unwrap(), mwu.u);
    }
    let (status, markdown, _) = analyzer_stats(Some(&csv), "markdown");
    assert_eq!(status, 0);
    assert!(markdown.contains("## Kruskal–Wallis") && markdown.contains("| g3 | g4 |"), "{markdown}");
}

#[test]
fn bad_input_ends_in_one_error_line_and_status_1() {
    for (csv, message) in [
        (None, "error: reading "),
        (Some("platform,seconds\na,1\n"), "error: line 1: expected the header `group,value`"),
        (Some("group,value\na,1\nb,x\n"), "error: line 3: value `x` is not a finite number"),
        (Some("group,value\na,1\na,2\n"), "error: need at least 2 groups to compare, got 1"),
    ] {
        let (status, stdout, stderr) = analyzer_stats(csv, "markdown");
        assert_eq!(status, 1, "{csv:?}");
        assert!(stdout.is_empty() && stderr.starts_with(message) && stderr.lines().count() == 1, "{csv:?}: {stderr}");
    }
}

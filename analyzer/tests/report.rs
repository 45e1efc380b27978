//! The report on a fixed synthetic run: every section present, the known differences found, and the
//! Markdown identical to the committed golden file (regenerate with `UPDATE_GOLDEN=1`).

mod common;

use analyzer::report::config::{Catalog, DEFAULT_CATALOG, DEFAULT_REQUIREMENTS, Requirements};
use analyzer::report::{Options, build, render};

fn report() -> analyzer::report::model::Report {
    let metrics = common::metrics("golden", &common::PAPERLIKE, 116, 1, 7);
    let catalog = Catalog::parse(DEFAULT_CATALOG).unwrap();
    let requirements = Requirements::parse(DEFAULT_REQUIREMENTS).unwrap();
    build("golden", &metrics, &catalog, &requirements, &Options { spec: Some("rounds = 1".into()), ..Options::default() })
}

#[test]
fn the_report_finds_the_known_differences_and_the_step() {
    let r = report();
    let metric = |key: &str| r.metrics.iter().find(|m| m.key == key).unwrap();
    assert_eq!(metric("upload").winner.as_deref(), Some("aws"));
    assert_eq!(metric("download").winner.as_deref(), Some("azure"));
    assert_eq!(metric("inference").winner.as_deref(), Some("azure"));
    assert_eq!(metric("throughput").winner.as_deref(), Some("azure"));
    let azure = metric("download").platforms.iter().find(|p| p.platform == "azure").unwrap();
    assert!(azure.change_points.iter().any(|c| (28..=32).contains(&c.index)), "{:?}", azure.change_points);
    assert_eq!(r.costs.len(), 2);
    assert_eq!(r.availability.iter().map(|a| a.meets_sla).collect::<Vec<_>>(), [Some(true), Some(true)]);
    assert!(r.latency.iter().any(|l| l.platform == "aws" && l.phase == "inference" && l.requests == 116 * 16));
    assert_eq!(r.requirements.len(), 8);
    let best = |name: &str| r.requirements.iter().find(|q| q.requirement.name == name).unwrap().best.clone();
    assert_eq!(best("Real-time inference").as_deref(), Some("azure"));
    assert_eq!(best("More code-focused developers").as_deref(), Some("aws"));
}

#[test]
fn the_markdown_matches_the_golden_file_and_the_html_is_self_contained() {
    let rendered = render(&report());
    let golden = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/report.md");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&golden, &rendered.markdown).unwrap();
    }
    let expected = std::fs::read_to_string(&golden).expect("golden file: run with UPDATE_GOLDEN=1 once");
    assert_eq!(rendered.markdown, expected, "report.md changed; if intended, rerun with UPDATE_GOLDEN=1 and review the diff");
    assert!(rendered.html.contains("<svg") && !rendered.html.contains("src=\"http") && !rendered.html.contains("<script"));
    assert_eq!(rendered.html.matches("<svg").count(), 4 * 4, "per metric: two platform charts, the overlay, the box plot");
    let json: serde_json::Value = serde_json::from_str(&rendered.json).unwrap();
    assert!(json["metrics"][0]["kruskal"]["p"].as_f64().unwrap() < 0.05);
}

fn build_default(metrics: &[proto::v1::BatchMetrics], options: &Options) -> analyzer::report::model::Report {
    let catalog = Catalog::parse(DEFAULT_CATALOG).unwrap();
    let requirements = Requirements::parse(DEFAULT_REQUIREMENTS).unwrap();
    build("v", metrics, &catalog, &requirements, options)
}

fn status(r: &analyzer::report::model::Report, platform: &str, id: &str) -> analyzer::report::model::Status {
    let p = r.validity.iter().find(|p| p.platform == platform).unwrap();
    p.checks.iter().find(|c| c.id == id).unwrap().status
}

#[test]
fn the_synthetic_run_is_valid_and_says_so_first() {
    use analyzer::report::model::Status;
    let r = report();
    assert!(r.valid, "{:#?}", r.validity);
    // Its upload and download phases hold 16 latencies of (0.5–1.5) × phase / 16 each: about one
    // request in flight, well above 0.5; nothing else is measured (no CPU, offsets, open loop).
    assert_eq!(status(&r, "aws", "latency_consistency"), Status::Pass);
    for id in ["open_loop_schedule", "open_loop_rate", "client_cpu", "clock_skew"] {
        assert_eq!(status(&r, "azure", id), Status::NotApplicable, "{id}");
    }
    let md = render(&r).markdown;
    let section = md.find("## Validity").unwrap();
    assert!(section < md.find("## Best platform per criterion").unwrap());
    assert!(md[section..].starts_with("## Validity\n\nAll platforms VALID.\n"));
    let json: serde_json::Value = serde_json::from_str(&render(&r).json).unwrap();
    assert_eq!(json["valid"], true);
    assert_eq!(json["validity"][0]["platform"], "aws");
    assert_eq!(json["validity"][0]["verdict"], "VALID");
    assert_eq!(json["validity"][0]["checks"][0]["id"], "open_loop_schedule");
    assert_eq!(json["validity"][0]["checks"][0]["status"], "not_applicable");
}

#[test]
fn an_invalid_run_says_so_in_the_title_the_headline_and_the_json() {
    // One latency of aws's first batch recorded at the one-hour limit fails aws, and only aws.
    let mut metrics = common::metrics("v", &common::PAPERLIKE, 20, 1, 3);
    let first = metrics.iter_mut().find(|m| m.platform == "aws").unwrap();
    first.inference.as_mut().unwrap().clamped = 1;
    // Half its 4 CPUs busy during upload: the client_cpu check passes against "< 85%".
    first.worker.as_mut().unwrap().cpus = 4;
    if let Some(upload) = first.upload.as_mut() {
        upload.cpu_ns = upload.duration_ns * 2;
    }
    let r = build_default(&metrics, &Options::default());
    assert!(!r.valid);
    let rendered = render(&r);
    assert!(rendered.markdown.starts_with("# Benchmark report: run v (INVALID)\n"));
    assert!(rendered.markdown.contains("\n## Validity\n\nINVALID: aws (clamped).\n"), "{}", rendered.markdown);
    assert!(rendered.html.contains("<title>Benchmark report: run v (INVALID)</title>"));
    // The threshold "< 85%" is escaped in HTML.
    assert!(rendered.markdown.contains("| 50% | < 85% | pass |"), "{}", rendered.markdown);
    assert!(rendered.html.contains("<h2 id=\"validity\">Validity</h2>") && rendered.html.contains("<td>50%</td><td>&lt; 85%</td><td>pass</td>"));
    let json: serde_json::Value = serde_json::from_str(&rendered.json).unwrap();
    assert_eq!((json["valid"].as_bool(), json["validity"][0]["verdict"].as_str()), (Some(false), Some("INVALID")));
    let clamped = json["validity"][0]["checks"].as_array().unwrap().iter().find(|c| c["id"] == "clamped").unwrap().clone();
    assert_eq!(clamped["figure"], 1.0);
    assert_eq!(clamped["threshold"], serde_json::json!({ "comparison": "<=", "value": 0.0, "breach": "fail" }));
    assert_eq!(analyzer::report::validity::invalid_line("v", &r.validity).as_deref(), Some("report: run v is INVALID: aws clamped"));
}

#[test]
fn excluding_warm_up_drops_the_slow_first_batch_before_anything_is_computed() {
    use analyzer::report::model::Status;
    // Every synthetic batch lasts 5 s; aws's first (in time order) lasts 50 s, 10× slower.
    let mut metrics = common::metrics("v", &common::PAPERLIKE, 20, 1, 3);
    let first = metrics.iter_mut().filter(|m| m.platform == "aws").min_by_key(|m| m.started_unix_ns).unwrap();
    first.finished_unix_ns = first.started_unix_ns + 50_000_000_000;
    let r = build_default(&metrics, &Options::default());
    assert_eq!(status(&r, "aws", "warm_up"), Status::Warn);
    assert_eq!(status(&r, "azure", "warm_up"), Status::Pass);
    let detail = &r.validity[0].checks.iter().find(|c| c.id == "warm_up").unwrap().detail;
    assert!(detail.contains("--exclude-warmup 1"), "{detail}");
    let kept = build_default(&metrics, &Options { exclude_warmup: Some(1), ..Options::default() });
    assert_eq!(status(&kept, "aws", "warm_up"), Status::Pass);
    assert_eq!((r.reproducibility.batches, kept.reproducibility.batches), (40, 38), "one batch of each platform left out");
    assert_eq!(kept.metrics[0].platforms[0].describe.n, 19);
    assert_eq!(kept.excluded_warmup, Some(1));
    let md = render(&kept).markdown;
    assert!(md.contains("Left out as warm-up: the first batch of each platform in time order (--exclude-warmup 1); every figure"), "{md}");
    assert!(md.contains("Warm-up excluded: the first batch of each platform in time order (--exclude-warmup 1)."), "{md}");
}

#[test]
fn a_platform_whose_batches_were_all_excluded_fails_sample_size() {
    use analyzer::report::model::Status;
    let metrics = common::metrics("v", &common::PAPERLIKE, 4, 1, 3);
    let r = build_default(&metrics, &Options { exclude_warmup: Some(4), ..Options::default() });
    assert_eq!((status(&r, "aws", "sample_size"), r.valid), (Status::Fail, false));
}

#[test]
fn the_same_run_reported_twice_gives_byte_identical_files() {
    use prost::Message;
    let dir = tempfile::tempdir().unwrap();
    let store_dir = dir.path().join("store");
    let mut store = analyzer::store::MetricsStore::open(&store_dir).unwrap();
    for m in common::metrics("twice", &common::PAPERLIKE, 40, 2, 9) {
        let payload = m.encode_to_vec();
        let (key, _) = proto::validate::batch_metrics(&payload).unwrap();
        store.append(&key, &payload).unwrap();
    }
    // Two processes, so that nothing seeded per process (hash maps) can differ unseen.
    let report = |out: &std::path::Path| {
        let status = std::process::Command::new(env!("CARGO_BIN_EXE_analyzer"))
            .args(["report", "--run", "twice", "--store"])
            .arg(&store_dir)
            .arg("--out")
            .arg(out)
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(status.success());
    };
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    report(&a);
    report(&b);
    for name in ["report.md", "report.html", "report.json"] {
        assert!(std::fs::read(a.join(name)).unwrap() == std::fs::read(b.join(name)).unwrap(), "{name} differs between two reports of one run");
    }
}

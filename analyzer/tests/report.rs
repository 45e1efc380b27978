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

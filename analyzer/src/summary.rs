//! A first look at a run: per platform, the median and interquartile range of the paper's measures.
//! (The full report with tests and figures builds on the same rows.)

use std::collections::BTreeMap;

use crate::rows::BatchRow;

pub use crate::stats::quantile;

/// Reads one measure from a row; `None` where the row has no such measure.
type Measure = fn(&BatchRow) -> Option<f64>;

/// The measures summarised, with their column titles.
const MEASURES: &[(&str, Measure)] = &[
    ("upload s", |r| Some(r.upload_s)),
    ("download s", |r| Some(r.download_s)),
    ("upload s/MiB", |r| Some(r.upload_s_per_mib)),
    ("download s/MiB", |r| Some(r.download_s_per_mib)),
    ("inference s/MiB", |r| r.inference_s_per_mib),
    ("throughput MiB/s", |r| Some(r.throughput_mib_s)),
];

fn cell(values: &mut Vec<f64>) -> String {
    values.retain(|v| v.is_finite());
    values.sort_by(f64::total_cmp);
    match (quantile(values, 0.25), quantile(values, 0.5), quantile(values, 0.75)) {
        (Some(q1), Some(m), Some(q3)) => format!("{m:.4} [{q1:.4}, {q3:.4}]"),
        _ => "–".to_owned(),
    }
}

/// Renders a Markdown summary: per platform and measure, median [first quartile, third quartile].
pub fn render_markdown(run_id: &str, rows: &[BatchRow]) -> String {
    let mut by_platform: BTreeMap<&str, Vec<&BatchRow>> = BTreeMap::new();
    for row in rows {
        by_platform.entry(&row.platform).or_default().push(row);
    }
    let mut out = format!("# Run {run_id}\n\nPer-batch measures, median [Q1, Q3]; MiB = 2^20 bytes; throughput = batch MiB / (download + inference s).\n\n");
    out.push_str("| platform | batches | MiB | errors | retries |");
    for (title, _) in MEASURES {
        out.push_str(&format!(" {title} |"));
    }
    out.push_str("\n|---|---:|---:|---:|---:|");
    out.push_str(&"---:|".repeat(MEASURES.len()));
    out.push('\n');
    for (platform, rows) in &by_platform {
        let mib: f64 = rows.iter().map(|r| r.mib).sum();
        let errors: u64 = rows.iter().map(|r| r.errors).sum();
        let retries: u64 = rows.iter().map(|r| r.retries).sum();
        out.push_str(&format!("| {platform} | {} | {mib:.1} | {errors} | {retries} |", rows.len()));
        for (_, get) in MEASURES {
            let mut values: Vec<f64> = rows.iter().filter_map(|r| get(r)).collect();
            out.push_str(&format!(" {} |", cell(&mut values)));
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_has_a_line_per_platform_and_dashes_for_missing_measures() {
        let mut a = BatchRow::from_metrics(&Default::default());
        a.platform = "aws".into();
        a.upload_s = 2.0;
        let mut b = a.clone();
        b.platform = "azure".into();
        let text = render_markdown("r", &[a.clone(), a, b]);
        let aws = text.lines().find(|l| l.starts_with("| aws")).unwrap();
        assert!(aws.starts_with("| aws | 2 |") && aws.contains("2.0000 [2.0000, 2.0000]") && aws.contains("–"), "{aws}");
        assert!(text.lines().any(|l| l.starts_with("| azure | 1 |")));
    }
}

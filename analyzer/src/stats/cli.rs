//! The `analyzer stats` command as text in, text out: parses a `group,value` CSV, compares the groups
//! (descriptives, Kruskal–Wallis with ε², and per pair Dunn–Holm, Mann–Whitney and Cliff's delta), and
//! renders the result as JSON or Markdown. The binary only reads the file and prints.

use serde::Serialize;

use super::{
    Descriptives, Kruskal, StatsError, cliffs_delta, describe, dunn_holm, epsilon_squared, kruskal, mann_whitney,
};

/// Output formats of `analyzer stats`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Json,
    Markdown,
}

/// Says what is wrong with the samples given to `analyzer stats`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InputError {
    /// The first line is not the header.
    #[error("line 1: expected the header `group,value`, found `{found}`")]
    Header { found: String },
    /// A line does not have exactly two comma-separated fields.
    #[error("line {line}: expected 2 fields `group,value`, found {fields}")]
    Fields { line: usize, fields: usize },
    /// A line has an empty group name.
    #[error("line {line}: the group name is empty")]
    EmptyName { line: usize },
    /// A value is not a finite number.
    #[error("line {line}: value `{value}` is not a finite number")]
    Value { line: usize, value: String },
    /// The samples cannot be compared.
    #[error(transparent)]
    Stats(#[from] StatsError),
}

/// Samples by group, groups in order of first appearance.
#[derive(Debug, Clone, PartialEq)]
pub struct Samples {
    /// Group names.
    pub names: Vec<String>,
    /// Values of each group, in file order.
    pub values: Vec<Vec<f64>>,
}

/// Parses a CSV with the header `group,value` and one sample per line; blank lines are skipped.
/// Fields are not quoted, so a group name cannot contain a comma.
pub fn parse_samples(text: &str) -> Result<Samples, InputError> {
    let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l.trim()));
    let header = lines.next().map_or("", |(_, l)| l.trim_start_matches('\u{feff}'));
    if header.split(',').map(str::trim).ne(["group", "value"]) {
        return Err(InputError::Header { found: header.to_owned() });
    }
    let mut samples = Samples { names: Vec::new(), values: Vec::new() };
    for (line, text) in lines.filter(|(_, l)| !l.is_empty()) {
        let fields: Vec<&str> = text.split(',').map(str::trim).collect();
        let [name, value] = fields[..] else {
            return Err(InputError::Fields { line, fields: fields.len() });
        };
        if name.is_empty() {
            return Err(InputError::EmptyName { line });
        }
        let value = match value.parse::<f64>() {
            Ok(v) if v.is_finite() => v,
            _ => return Err(InputError::Value { line, value: value.to_owned() }),
        };
        match samples.names.iter().position(|n| n == name) {
            Some(i) => samples.values[i].push(value),
            None => {
                samples.names.push(name.to_owned());
                samples.values.push(vec![value]);
            }
        }
    }
    Ok(samples)
}

/// One group's descriptives, under its name.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupSummary {
    /// Group name from the CSV.
    pub name: String,
    /// The group's descriptives, flattened into this object.
    #[serde(flatten)]
    pub descriptives: Descriptives,
}

/// The pairwise comparisons of two groups.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PairSummary {
    /// Name of the first group (earlier in the file).
    pub a: String,
    /// Name of the second group.
    pub b: String,
    /// Dunn's z, positive when `a` ranks higher.
    pub dunn_z: f64,
    /// Dunn's p, Holm-adjusted over all pairs.
    pub dunn_p_holm: f64,
    /// Mann–Whitney U of `a`.
    pub mwu_u: f64,
    /// Mann–Whitney two-sided p; `None` (JSON null) when the pair's values are all equal.
    pub mwu_p: Option<f64>,
    /// Cliff's delta of `a` over `b`.
    pub cliffs_delta: f64,
}

/// Everything `analyzer stats` reports.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Analysis {
    /// Descriptives per group, in order of first appearance.
    pub groups: Vec<GroupSummary>,
    /// Kruskal–Wallis test over all groups.
    pub kruskal: Kruskal,
    /// ε² effect size of the Kruskal–Wallis H.
    pub epsilon_squared: f64,
    /// Every pair of groups, (0, 1), (0, 2), …, (1, 2), …
    pub pairs: Vec<PairSummary>,
}

/// Compares the groups of `samples`; needs at least two groups, not all values equal.
pub fn analyse(samples: &Samples) -> Result<Analysis, StatsError> {
    let groups: Vec<&[f64]> = samples.values.iter().map(Vec::as_slice).collect();
    let k = kruskal(&groups)?;
    let n = groups.iter().map(|g| g.len()).sum();
    let mut pairs = Vec::new();
    for d in dunn_holm(&groups)? {
        let (a, b) = (groups[d.a], groups[d.b]);
        let (mwu_u, mwu_p) = match mann_whitney(a, b) {
            Ok(m) => (m.u, Some(m.p)),
            // Only when this pair's values are all equal: U is then n_a·n_b/2, its p undefined.
            Err(StatsError::AllEqual) => (a.len() as f64 * b.len() as f64 / 2.0, None),
            Err(e) => return Err(e),
        };
        pairs.push(PairSummary {
            a: samples.names[d.a].clone(),
            b: samples.names[d.b].clone(),
            dunn_z: d.z,
            dunn_p_holm: d.p_holm,
            mwu_u,
            mwu_p,
            cliffs_delta: cliffs_delta(a, b)?,
        });
    }
    let summaries = samples
        .names
        .iter()
        .zip(&groups)
        .map(|(name, g)| Ok(GroupSummary { name: name.clone(), descriptives: describe(g)? }))
        .collect::<Result<_, StatsError>>()?;
    Ok(Analysis { groups: summaries, epsilon_squared: epsilon_squared(k.h, n), kruskal: k, pairs })
}

/// Parses `text` and renders its analysis in `format`.
pub fn run(text: &str, format: Format) -> Result<String, InputError> {
    let analysis = analyse(&parse_samples(text)?)?;
    Ok(match format {
        Format::Json => render_json(&analysis),
        Format::Markdown => render_markdown(&analysis),
    })
}

/// Renders an analysis as pretty-printed JSON with a trailing newline.
pub fn render_json(analysis: &Analysis) -> String {
    serde_json::to_string_pretty(analysis).expect("an analysis serialises") + "\n"
}

/// Formats a p-value: fixed-point down to 0.001, scientific below.
fn p_value(p: f64) -> String {
    if p >= 1e-3 { format!("{p:.4}") } else { format!("{p:.2e}") }
}

/// Renders an analysis as Markdown tables.
pub fn render_markdown(analysis: &Analysis) -> String {
    let mut out =
        String::from("## Groups\n\n| group | n | mean | sd | median | Q1 | Q3 | IQR | min | max | p5 | p95 |\n");
    out.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for g in &analysis.groups {
        let d = &g.descriptives;
        out.push_str(&format!("| {} | {} |", g.name, d.n));
        for v in [d.mean, d.sd, d.median, d.q1, d.q3, d.iqr, d.min, d.max, d.p5, d.p95] {
            out.push_str(&format!(" {v:.4} |"));
        }
        out.push('\n');
    }
    let k = &analysis.kruskal;
    out.push_str(&format!(
        "\n## Kruskal–Wallis\n\nH = {:.4}, df = {}, p = {}, ε² = {:.4}\n",
        k.h,
        k.df,
        p_value(k.p),
        analysis.epsilon_squared
    ));
    out.push_str("\n## Pairs\n\n| a | b | Dunn z | Dunn p (Holm) | Mann–Whitney U | Mann–Whitney p | Cliff's δ |\n");
    out.push_str("|---|---|---:|---:|---:|---:|---:|\n");
    for p in &analysis.pairs {
        let mwu_p = p.mwu_p.map_or_else(|| "–".to_owned(), p_value);
        out.push_str(&format!(
            "| {} | {} | {:.4} | {} | {} | {} | {:.4} |\n",
            p.a,
            p.b,
            p.dunn_z,
            p_value(p.dunn_p_holm),
            p.mwu_u,
            mwu_p,
            p.cliffs_delta
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const CSV: &str = "group,value\naws,1.0\naws,1.2\nazure,1.5\r\n\nazure,1.7\ngcp,0.9\naws,1.1\n";

    #[test]
    fn groups_keep_the_order_of_first_appearance() {
        let s = parse_samples(CSV).unwrap();
        assert_eq!(s.names, ["aws", "azure", "gcp"]);
        assert_eq!(s.values, [vec![1.0, 1.2, 1.1], vec![1.5, 1.7], vec![0.9]]);
    }

    #[test]
    fn bad_lines_are_named_by_number() {
        let err = |text: &str| parse_samples(text).unwrap_err().to_string();
        assert_eq!(err(""), "line 1: expected the header `group,value`, found ``");
        assert_eq!(
            err("platform,seconds\na,1\n"),
            "line 1: expected the header `group,value`, found `platform,seconds`"
        );
        assert_eq!(err("group,value\na,1\na,fast\n"), "line 3: value `fast` is not a finite number");
        assert_eq!(err("group,value\na,1\n\na,NaN\n"), "line 4: value `NaN` is not a finite number");
        assert_eq!(err("group,value\na,1,2\n"), "line 2: expected 2 fields `group,value`, found 3");
        assert_eq!(err("group,value\n,1\n"), "line 2: the group name is empty");
    }

    #[test]
    fn one_group_cannot_be_compared() {
        assert_eq!(
            run("group,value\na,1\na,2\n", Format::Json).unwrap_err().to_string(),
            "need at least 2 groups to compare, got 1"
        );
        assert_eq!(run("group,value\na,1\nb,1\n", Format::Json), Err(InputError::Stats(StatsError::AllEqual)));
    }

    #[test]
    fn json_has_exactly_the_documented_fields() {
        let json: serde_json::Value = serde_json::from_str(&run(CSV, Format::Json).unwrap()).unwrap();
        let keys = |v: &serde_json::Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
        assert_eq!(keys(&json), ["groups", "kruskal", "epsilon_squared", "pairs"]);
        assert_eq!(
            keys(&json["groups"][0]),
            ["name", "n", "mean", "sd", "median", "q1", "q3", "iqr", "min", "max", "p5", "p95"]
        );
        assert_eq!(keys(&json["kruskal"]), ["h", "df", "p"]);
        assert_eq!(keys(&json["pairs"][0]), ["a", "b", "dunn_z", "dunn_p_holm", "mwu_u", "mwu_p", "cliffs_delta"]);
        assert_eq!(json["groups"][2]["name"], "gcp");
        assert_eq!(json["kruskal"]["df"], 2);
        let pairs: Vec<(&str, &str)> = json["pairs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (p["a"].as_str().unwrap(), p["b"].as_str().unwrap()))
            .collect();
        assert_eq!(pairs, [("aws", "azure"), ("aws", "gcp"), ("azure", "gcp")]);
        assert_eq!(json["pairs"][0]["cliffs_delta"], -1.0);
        assert_eq!(json["pairs"][0]["mwu_u"], 0.0);
    }

    #[test]
    fn a_pair_of_equal_values_has_no_mann_whitney_p() {
        let a = analyse(&parse_samples("group,value\na,1\na,1\nb,1\nc,2\nc,3\n").unwrap()).unwrap();
        assert_eq!((a.pairs[0].mwu_u, a.pairs[0].mwu_p), (1.0, None));
        assert!(render_json(&a).contains("\"mwu_p\": null"));
        assert!(
            render_markdown(&a).contains("| a | b | 0.0000 | 1.0000 | 1 | – | 0.0000 |"),
            "{}",
            render_markdown(&a)
        );
    }

    #[test]
    fn markdown_has_a_row_per_group_and_per_pair() {
        let text = run(CSV, Format::Markdown).unwrap();
        assert!(text.contains("## Groups") && text.contains("## Kruskal–Wallis") && text.contains("## Pairs"));
        assert!(text.contains("| aws | 3 | 1.1000 | 0.1000 | 1.1000 |"), "{text}");
        assert!(text.contains("H = ") && text.contains("df = 2"));
        assert!(text.lines().any(|l| l.starts_with("| azure | gcp |")));
    }
}

//! `analyzer check`: service-level gates on a run, as k6 thresholds are, for pipelines and scheduled
//! stability runs. Each criterion is `METRIC OP VALUE`; every platform is checked against every
//! criterion, and any failure makes the command exit non-zero (pure: criteria and a report in,
//! verdicts out).
//!
//! Metrics: `PHASE.pQ_ms` for `upload`, `download`, `inference` and `p50`, `p90`, `p99`, `p999`
//! (merged per-request latency); `availability` (percent of requests that succeeded, all phases);
//! `capacity_rps` (the highest sustainable rate of a load sweep, which needs a target).

use crate::report::model::Report;

/// How a measured value must compare with the bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    AtMost,
    Below,
    AtLeast,
    Above,
}

impl Op {
    fn holds(self, value: f64, bound: f64) -> bool {
        match self {
            Op::AtMost => value <= bound,
            Op::Below => value < bound,
            Op::AtLeast => value >= bound,
            Op::Above => value > bound,
        }
    }

    fn symbol(self) -> &'static str {
        match self {
            Op::AtMost => "<=",
            Op::Below => "<",
            Op::AtLeast => ">=",
            Op::Above => ">",
        }
    }
}

/// What a criterion measures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Metric {
    Latency { phase: &'static str, quantile: &'static str },
    Availability,
    CapacityRps,
}

/// One criterion: `inference.p99_ms<=500`.
#[derive(Debug, Clone, PartialEq)]
pub struct Slo {
    pub text: String,
    pub metric: Metric,
    pub op: Op,
    pub bound: f64,
}

impl Slo {
    /// Parses `METRIC OP VALUE` (spaces allowed); the error names what is wrong.
    pub fn parse(text: &str) -> Result<Self, String> {
        let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        let bad = |why: String| format!("--slo {text:?}: {why}");
        let (at, op, len) = [("<=", Op::AtMost), (">=", Op::AtLeast), ("<", Op::Below), (">", Op::Above)]
            .iter()
            .find_map(|(s, op)| compact.find(s).map(|i| (i, *op, s.len())))
            .ok_or_else(|| bad("no comparison (<=, <, >=, >)".into()))?;
        let (name, value) = (&compact[..at], &compact[at + len..]);
        let bound: f64 = value.parse().ok().filter(|v: &f64| v.is_finite()).ok_or_else(|| bad(format!("{value:?} is not a number")))?;
        let metric = match name {
            "availability" => Metric::Availability,
            "capacity_rps" => Metric::CapacityRps,
            _ => {
                let (phase, quantile) = name.split_once('.').ok_or_else(|| bad(format!("unknown metric {name:?}")))?;
                let phase = ["upload", "download", "inference"].into_iter().find(|p| *p == phase).ok_or_else(|| bad(format!("unknown phase {phase:?} (upload, download, inference)")))?;
                let quantile = ["p50_ms", "p90_ms", "p99_ms", "p999_ms"].into_iter().find(|q| *q == quantile).ok_or_else(|| bad(format!("unknown latency {quantile:?} (p50_ms, p90_ms, p99_ms, p999_ms)")))?;
                Metric::Latency { phase, quantile }
            }
        };
        Ok(Self { text: format!("{name}{}{value}", op.symbol()), metric, op, bound })
    }

    /// The platform's value of this metric in the report, if it was measured.
    fn value(&self, report: &Report, platform: &str) -> Option<f64> {
        match &self.metric {
            Metric::Latency { phase, quantile } => {
                let row = report.latency.iter().find(|l| l.platform == platform && l.phase == *phase)?;
                Some(match *quantile {
                    "p50_ms" => row.p50_ms,
                    "p90_ms" => row.p90_ms,
                    "p99_ms" => row.p99_ms,
                    _ => row.p999_ms,
                })
            }
            Metric::Availability => report.availability.iter().find(|a| a.platform == platform && a.requests > 0).map(|a| a.availability_percent),
            Metric::CapacityRps => report.capacity.as_ref()?.platforms.iter().find(|c| c.platform == platform)?.sustainable_rps,
        }
    }
}

/// The verdict on one platform and criterion.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub platform: String,
    pub slo: String,
    /// The measured value; `None` when the run did not measure it (which fails the criterion).
    pub value: Option<f64>,
    pub pass: bool,
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let verdict = if self.pass { "PASS" } else { "FAIL" };
        match self.value {
            Some(v) => write!(f, "{verdict} {} {}: {}", self.platform, self.slo, crate::report::content::short(v)),
            None => write!(f, "{verdict} {} {}: not measured in this run", self.platform, self.slo),
        }
    }
}

/// Checks each of `platforms` (all of the report's when empty) against every criterion; a platform
/// the report does not have is refused.
pub fn check(report: &Report, slos: &[Slo], platforms: &[String]) -> Result<Vec<Verdict>, String> {
    let chosen: Vec<String> = if platforms.is_empty() { report.platforms.clone() } else { platforms.to_vec() };
    if let Some(unknown) = chosen.iter().find(|p| !report.platforms.contains(p)) {
        return Err(format!("platform {unknown:?} is not in run {} (platforms: {})", report.run_id, report.platforms.join(", ")));
    }
    Ok(chosen
        .iter()
        .flat_map(|p| {
            slos.iter().map(move |slo| {
                let value = slo.value(report, p);
                Verdict { platform: p.clone(), slo: slo.text.clone(), value, pass: value.is_some_and(|v| slo.op.holds(v, slo.bound)) }
            })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn criteria_parse_and_mistakes_are_named() {
        let slo = Slo::parse("inference.p99_ms <= 500").unwrap();
        assert_eq!((slo.metric.clone(), slo.op, slo.bound, slo.text.as_str()), (Metric::Latency { phase: "inference", quantile: "p99_ms" }, Op::AtMost, 500.0, "inference.p99_ms<=500"));
        assert_eq!(Slo::parse("availability>=99.9").unwrap().metric, Metric::Availability);
        assert_eq!(Slo::parse("capacity_rps>40").unwrap().op, Op::Above);
        for (text, expected) in [
            ("inference.p99_ms = 5", "no comparison"),
            ("inference.p99_ms <= fast", "not a number"),
            ("inference.p98_ms <= 5", "unknown latency"),
            ("serving.p99_ms <= 5", "unknown phase"),
            ("uptime >= 5", "unknown metric"),
        ] {
            let err = Slo::parse(text).unwrap_err();
            assert!(err.contains(expected), "{text:?} gave {err:?}");
        }
    }

    #[test]
    fn comparisons_hold_as_written() {
        assert!(Op::AtMost.holds(5.0, 5.0) && !Op::Below.holds(5.0, 5.0));
        assert!(Op::AtLeast.holds(5.0, 5.0) && !Op::Above.holds(5.0, 5.0));
        assert!(!Op::AtMost.holds(f64::NAN, 5.0));
    }
}

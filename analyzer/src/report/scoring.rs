//! The paper's Tables 8 and 9: criterion scores per platform, the winner per criterion, and the best
//! platform for each business requirement from the user's weights.

use std::collections::BTreeMap;

use super::config::{Catalog, Requirements};
use super::model::*;

fn midpoint(range: (f64, f64)) -> f64 {
    (range.0 + range.1) / 2.0
}

/// Scores of every criterion per platform, 0 to 1: a significant winner scores 1 and the others 0;
/// without a significant difference every platform scores 0.5; catalog values are used as given.
pub(super) fn criterion_scores(sections: &[MetricSection], costs: &[CostRow], platforms: &[String], catalog: &Catalog) -> Scores {
    let mut scores = Scores::new();
    for s in sections {
        for p in platforms {
            let v = match &s.winner {
                Some(w) if w == p => 1.0,
                Some(_) => 0.0,
                None => 0.5,
            };
            scores.entry(s.key.to_owned()).or_default().insert(p.clone(), v);
        }
    }
    if costs.len() == platforms.len() && !costs.is_empty() {
        let cheapest = costs.iter().map(|c| midpoint(c.usd_per_1000_images)).fold(f64::INFINITY, f64::min);
        for c in costs {
            scores.entry("cost".into()).or_default().insert(c.platform.clone(), if midpoint(c.usd_per_1000_images) <= cheapest { 1.0 } else { 0.0 });
        }
    }
    let slas: Vec<(String, f64)> = platforms.iter().filter_map(|p| Some((p.clone(), catalog.platform.get(p)?.sla_percent?))).collect();
    if slas.len() == platforms.len() && !slas.is_empty() {
        let top = slas.iter().map(|(_, s)| *s).fold(f64::MIN, f64::max);
        for (p, s) in slas {
            scores.entry("sla".into()).or_default().insert(p, if s >= top { 1.0 } else { 0.0 });
        }
    }
    for p in platforms {
        for (quality, v) in catalog.platform.get(p).map(|e| e.qualities.clone()).unwrap_or_default() {
            scores.entry(quality).or_default().insert(p.clone(), v);
        }
    }
    scores
}

/// Criterion scores by criterion, then platform.
pub(super) type Scores = BTreeMap<String, BTreeMap<String, f64>>;

/// The platforms with the top score.
fn leaders(by_platform: &BTreeMap<String, f64>) -> Vec<&String> {
    let top = by_platform.values().cloned().fold(f64::MIN, f64::max);
    by_platform.iter().filter(|(_, v)| **v >= top).map(|(p, _)| p).collect()
}

pub(super) fn winners(sections: &[MetricSection], costs: &[CostRow], platforms: &[String], scores: &Scores) -> Vec<WinnerRow> {
    let mut rows: Vec<WinnerRow> = sections
        .iter()
        .map(|s| WinnerRow {
            criterion: format!("{} ({})", s.title, s.unit),
            winner: s.winner.clone(),
            basis: match (&s.kruskal, &s.winner) {
                (Some(k), Some(_)) => format!("Kruskal–Wallis p = {:.3e}, best median", k.p),
                (Some(k), None) => format!("no significant difference (p = {:.3e})", k.p),
                (None, _) => s.note.clone().unwrap_or_else(|| "no test".into()),
            },
        })
        .collect();
    if !costs.is_empty() {
        let best = costs.iter().min_by(|a, b| midpoint(a.usd_per_1000_images).total_cmp(&midpoint(b.usd_per_1000_images)));
        rows.push(WinnerRow {
            criterion: "Cost per 1,000 images (USD)".into(),
            winner: best.filter(|_| costs.len() == platforms.len()).map(|c| c.platform.clone()),
            basis: "catalog prices at the measured throughput (range midpoint)".into(),
        });
    }
    for (criterion, title) in [("sla", "Service-level agreement"), ("ml_catalog", "ML service catalog"), ("ease_of_deployment", "Ease of deployment")] {
        let Some(by_platform) = scores.get(criterion).filter(|m| m.len() == platforms.len()) else { continue };
        let leaders = leaders(by_platform);
        rows.push(WinnerRow {
            criterion: title.into(),
            winner: (leaders.len() == 1).then(|| leaders[0].clone()),
            basis: "price and service catalog".into(),
        });
    }
    rows
}

pub(super) fn requirement_rows(requirements: &Requirements, platforms: &[String], scores: &Scores) -> Vec<RequirementRow> {
    requirements
        .requirements
        .iter()
        .map(|r| {
            let mut reasons = Vec::new();
            let mut totals: Vec<(String, f64)> = platforms.iter().map(|p| (p.clone(), 0.0)).collect();
            let mut weight_sum = 0.0;
            let total_weight: f64 = r.weights.values().sum();
            for (criterion, weight) in &r.weights {
                let Some(by_platform) = scores.get(criterion) else {
                    reasons.push(format!("{criterion}: no data"));
                    continue;
                };
                weight_sum += weight;
                for (p, total) in totals.iter_mut() {
                    *total += weight * by_platform.get(p).copied().unwrap_or(0.0);
                }
                let leaders: Vec<&str> = leaders(by_platform).into_iter().map(String::as_str).collect();
                let lead = if leaders.len() == by_platform.len() { "tie".to_owned() } else { leaders.join(", ") };
                reasons.push(format!("{criterion} ×{weight}: {lead}"));
            }
            if weight_sum > 0.0 {
                for (_, t) in totals.iter_mut() {
                    *t /= weight_sum;
                }
            }
            let top = totals.iter().map(|(_, t)| *t).fold(f64::MIN, f64::max);
            let leaders: Vec<&String> = totals.iter().filter(|(_, t)| (*t - top).abs() < 1e-12).map(|(p, _)| p).collect();
            RequirementRow {
                requirement: r.clone(),
                best: (weight_sum > 0.0 && leaders.len() == 1).then(|| leaders[0].clone()),
                coverage: if total_weight > 0.0 { weight_sum / total_weight } else { 0.0 },
                scores: totals,
                reasoning: reasons.join("; "),
            }
        })
        .collect()
}

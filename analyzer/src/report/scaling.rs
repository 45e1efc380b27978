//! Scaling: throughput per platform and round against the round with the fewest workers, and where
//! efficiency falls below the floor.

use std::collections::{BTreeMap, BTreeSet};

use super::model::*;
use crate::batch::Batch;

/// Throughput per (platform, round) and its efficiency against the round with the fewest workers;
/// empty unless some platform's rounds ran at different worker counts.
pub(super) fn scaling(metrics: &[&Batch]) -> Vec<ScalingRow> {
    let mut groups: BTreeMap<(String, u32), Vec<&Batch>> = BTreeMap::new();
    for m in metrics {
        groups.entry((m.platform.clone(), m.round)).or_default().push(m);
    }
    let mut rows: Vec<ScalingRow> = groups
        .into_iter()
        .map(|((platform, round), batches)| {
            let workers = batches.iter().filter_map(|m| m.worker.as_ref().map(|w| w.worker_id.as_str())).collect::<BTreeSet<_>>().len();
            let images: u64 = batches.iter().map(|m| u64::from(m.images)).sum();
            let start = batches.iter().map(|m| m.started_unix_ns).min().unwrap_or(0);
            let end = batches.iter().map(|m| m.finished_unix_ns).max().unwrap_or(0);
            let wall_seconds = (end - start).max(0) as f64 / 1e9;
            let images_per_second = if wall_seconds > 0.0 { images as f64 / wall_seconds } else { f64::NAN };
            ScalingRow { platform, round, workers, images, wall_seconds, images_per_second, efficiency: f64::NAN }
        })
        .collect();
    let platforms: BTreeSet<String> = rows.iter().map(|r| r.platform.clone()).collect();
    let mut varied = false;
    for platform in &platforms {
        let mine: Vec<&ScalingRow> = rows.iter().filter(|r| &r.platform == platform).collect();
        varied |= mine.iter().map(|r| r.workers).collect::<BTreeSet<_>>().len() > 1;
        let Some(base) = mine.iter().filter(|r| r.workers > 0 && r.images_per_second.is_finite()).min_by_key(|r| r.workers) else { continue };
        let per_worker = base.images_per_second / base.workers as f64;
        for row in rows.iter_mut().filter(|r| &r.platform == platform) {
            row.efficiency = row.images_per_second / (row.workers as f64 * per_worker);
        }
    }
    if varied { rows } else { Vec::new() }
}

/// Per platform, the most workers reached before efficiency fell below the floor (none when it never
/// did).
pub(super) fn scaling_stops(rows: &[ScalingRow]) -> Vec<(String, usize)> {
    let platforms: BTreeSet<&str> = rows.iter().map(|r| r.platform.as_str()).collect();
    platforms
        .into_iter()
        .filter_map(|p| {
            let mut mine: Vec<&ScalingRow> = rows.iter().filter(|r| r.platform == p).collect();
            mine.sort_by_key(|r| r.workers);
            let first_bad = mine.iter().position(|r| r.efficiency < SCALING_FLOOR)?;
            let last_good = if first_bad == 0 { mine[0].workers } else { mine[first_bad - 1].workers };
            Some((p.to_owned(), last_good))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaling_efficiency_is_against_the_fewest_workers_and_says_where_it_stops() {
        // (round, worker, start s, end s, images): 1 worker 100 images in 10 s; 2 workers in 6 s; 4 in 5 s.
        let batches = [
            (0, "w1", 0, 5, 50), (0, "w1", 5, 10, 50),
            (1, "w1", 20, 26, 50), (1, "w2", 20, 25, 50),
            (2, "w1", 30, 35, 25), (2, "w2", 30, 34, 25), (2, "w3", 30, 35, 25), (2, "w4", 31, 35, 25),
        ];
        let metrics: Vec<proto::v1::BatchMetrics> = batches
            .iter()
            .map(|&(round, worker, start, end, images)| proto::v1::BatchMetrics {
                platform: "aws".into(),
                round,
                images,
                started_unix_ns: start * 1_000_000_000,
                finished_unix_ns: end * 1_000_000_000,
                worker: Some(proto::v1::WorkerIdentity { worker_id: worker.into(), ..Default::default() }),
                ..Default::default()
            })
            .collect();
        let converted: Vec<Batch> = metrics.iter().map(Batch::from).collect();
        let refs: Vec<&Batch> = converted.iter().collect();
        let rows = scaling(&refs);
        let got: Vec<(usize, f64)> = rows.iter().map(|r| (r.workers, (r.efficiency * 1000.0).round() / 1000.0)).collect();
        assert_eq!(got, [(1, 1.0), (2, 0.833), (4, 0.5)]);
        assert_eq!(rows[0].images_per_second, 10.0);
        assert_eq!(scaling_stops(&rows), [("aws".to_owned(), 2)]);
        // Rounds at one worker count are not a scaling run.
        assert!(scaling(&refs[..2]).is_empty());
    }
}

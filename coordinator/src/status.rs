//! Progress of a run: a table for people, JSON for scripts, live bars for a terminal.

use std::collections::BTreeMap;

use control::state::{BatchState, RunProgress};
use prost::Message;
use proto::v1::WorkerHeartbeat;
use serde::Serialize;

/// Live workers of one platform, from their heartbeats.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PlatformWorkers {
    pub live: u32,
    pub busy: u32,
}

/// Everything `status` shows.
#[derive(Debug, Clone, Serialize)]
pub struct StatusView {
    #[serde(flatten)]
    pub run: RunProgress,
    pub complete: bool,
    pub workers: BTreeMap<String, PlatformWorkers>,
}

/// Counts live and busy workers per platform from encoded heartbeats; undecodable ones are skipped.
pub fn workers_by_platform(heartbeats: &[Vec<u8>]) -> BTreeMap<String, PlatformWorkers> {
    let mut by_platform: BTreeMap<String, PlatformWorkers> = BTreeMap::new();
    for beat in heartbeats.iter().filter_map(|b| WorkerHeartbeat::decode(b.as_slice()).ok()) {
        let platform = beat.worker.map(|w| w.platform).unwrap_or_default();
        let entry = by_platform.entry(platform).or_default();
        entry.live += 1;
        if beat.state == proto::v1::worker_heartbeat::State::Busy as i32 {
            entry.busy += 1;
        }
    }
    by_platform
}

fn duration(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
    }
}

/// Renders the status as a fixed-width table.
pub fn render(view: &StatusView, now_ms: i64) -> String {
    let run = &view.run;
    let phase = match (run.cancelled, view.complete, run.started_unix_ms, run.finished_unix_ms) {
        (true, _, _, _) => "cancelled".to_owned(),
        (_, true, Some(s), Some(f)) => format!("complete in {}", duration(f - s)),
        (_, true, _, _) => "complete".to_owned(),
        (_, _, Some(s), _) => format!("running for {}", duration(now_ms - s)),
        _ => "waiting for workers".to_owned(),
    };
    let mut out = format!("run {} · {} batches · {phase}\n", run.run_id, run.total);
    let columns = [BatchState::Pending, BatchState::Enqueuing, BatchState::Queued, BatchState::Running, BatchState::Done, BatchState::Failed, BatchState::Cancelled];
    out.push_str(&format!("{:<16}", "platform"));
    for c in columns {
        out.push_str(&format!("{:>10}", c.as_str()));
    }
    out.push_str(&format!("{:>10}{:>8}\n", "workers", "done%"));
    for (platform, counts) in &run.platforms {
        let total: u64 = counts.values().sum();
        out.push_str(&format!("{platform:<16}"));
        for c in columns {
            out.push_str(&format!("{:>10}", counts.get(&c).copied().unwrap_or(0)));
        }
        let w = view.workers.get(platform).cloned().unwrap_or_default();
        let done = counts.get(&BatchState::Done).copied().unwrap_or(0);
        let pct = if total == 0 { 0.0 } else { 100.0 * done as f64 / total as f64 };
        out.push_str(&format!("{:>10}{pct:>7.1}%\n", format!("{}/{}", w.busy, w.live)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_shows_every_platform_with_its_counts() {
        let mut platforms = BTreeMap::new();
        platforms.insert("aws".to_owned(), BTreeMap::from([(BatchState::Done, 3), (BatchState::Queued, 1)]));
        platforms.insert("azure".to_owned(), BTreeMap::from([(BatchState::Running, 2), (BatchState::Failed, 2)]));
        let view = StatusView {
            run: RunProgress {
                run_id: "r".into(),
                total: 8,
                created_unix_ms: 0,
                started_unix_ms: Some(1_000),
                finished_unix_ms: None,
                cancelled: false,
                platforms,
            },
            complete: false,
            workers: BTreeMap::from([("aws".to_owned(), PlatformWorkers { live: 2, busy: 1 })]),
        };
        let text = render(&view, 62_000);
        assert!(text.starts_with("run r · 8 batches · running for 1m01s\n"), "{text}");
        let aws = text.lines().find(|l| l.starts_with("aws")).unwrap();
        assert!(aws.contains("1/2") && aws.trim_end().ends_with("75.0%"), "{aws}");
        assert!(text.lines().any(|l| l.starts_with("azure")));
    }
}

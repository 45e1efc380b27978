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
    /// Errors the live workers met so far (failed requests and failed platform calls).
    pub errors: u64,
    /// The latest error of each live worker that had one, newest first.
    pub recent_errors: Vec<RecentError>,
}

/// A worker's latest error, as its heartbeat carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecentError {
    pub worker: String,
    pub at_unix_ms: i64,
    pub message: String,
}

/// How fast a platform gets through its batches, and when it will be done at that pace.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Pace {
    pub batches_per_min: f64,
    /// Seconds until the batches still to run are done; absent while nothing has finished.
    pub eta_secs: Option<f64>,
}

impl Pace {
    /// `finished` batches over `elapsed_ms`, `left` to go.
    pub fn new(finished: f64, elapsed_ms: i64, left: u64) -> Option<Self> {
        if elapsed_ms <= 0 {
            return None;
        }
        let per_sec = finished / (elapsed_ms as f64 / 1000.0);
        let eta_secs = (per_sec > 0.0).then(|| left as f64 / per_sec);
        Some(Self { batches_per_min: per_sec * 60.0, eta_secs })
    }
}

/// The pace over the last minute: the live view's figure, so that a run that slowed down (or sped
/// up) shows its recent speed and not its average since the start.
#[derive(Debug, Default)]
pub struct RecentPace {
    /// When, and each platform's batches worked through by then, oldest first.
    samples: std::collections::VecDeque<(i64, BTreeMap<String, u64>)>,
}

impl RecentPace {
    /// Samples older than this are forgotten.
    pub const WINDOW_MS: i64 = 60_000;
    /// No pace is shown until the samples span this much.
    pub const MIN_SPAN_MS: i64 = 10_000;

    /// Records the run's counts at `now_ms` and returns each platform's pace since the oldest
    /// sample of the last minute, once the samples span ten seconds.
    pub fn update(&mut self, now_ms: i64, platforms: &BTreeMap<String, BTreeMap<BatchState, u64>>) -> BTreeMap<String, Pace> {
        self.samples.push_back((now_ms, platforms.iter().map(|(p, c)| (p.clone(), worked_and_left(c).0)).collect()));
        while self.samples.front().is_some_and(|(t, _)| now_ms - t > Self::WINDOW_MS) {
            self.samples.pop_front();
        }
        let Some((then, before)) = self.samples.front().filter(|(t, _)| now_ms - t >= Self::MIN_SPAN_MS) else {
            return BTreeMap::new();
        };
        platforms
            .iter()
            .filter_map(|(platform, counts)| {
                let (worked, left) = worked_and_left(counts);
                let recent = worked.saturating_sub(before.get(platform).copied().unwrap_or(0));
                Some((platform.clone(), Pace::new(recent as f64, now_ms - then, left)?))
            })
            .collect()
    }
}

/// Batches of a platform that are over: done, failed or cancelled.
pub fn finished(counts: &BTreeMap<BatchState, u64>) -> u64 {
    [BatchState::Done, BatchState::Failed, BatchState::Cancelled].iter().map(|s| counts.get(s).copied().unwrap_or(0)).sum()
}

/// A platform's batches worked through (done or failed; cancelled ones never ran) and still to run.
pub fn worked_and_left(counts: &BTreeMap<BatchState, u64>) -> (u64, u64) {
    let get = |s| counts.get(&s).copied().unwrap_or(0);
    (get(BatchState::Done) + get(BatchState::Failed), counts.values().sum::<u64>() - finished(counts))
}

/// Everything `status` shows.
#[derive(Debug, Clone, Serialize)]
pub struct StatusView {
    #[serde(flatten)]
    pub run: RunProgress,
    pub complete: bool,
    pub workers: BTreeMap<String, PlatformWorkers>,
    /// Per platform, over the run so far (or, under `--watch`, over the last minute).
    pub pace: BTreeMap<String, Pace>,
}

impl StatusView {
    /// The view at `now_ms`, with each platform's pace over the run since its first batch started.
    pub fn new(run: RunProgress, workers: BTreeMap<String, PlatformWorkers>, now_ms: i64) -> Self {
        let mut pace = BTreeMap::new();
        if let Some(started) = run.started_unix_ms {
            let end = run.finished_unix_ms.unwrap_or(now_ms);
            for (platform, counts) in &run.platforms {
                let (worked, left) = worked_and_left(counts);
                if let Some(p) = Pace::new(worked as f64, end - started, left) {
                    pace.insert(platform.clone(), p);
                }
            }
        }
        Self { complete: run.is_complete(), run, workers, pace }
    }
}

/// Counts live and busy workers per platform from encoded heartbeats, with their errors; undecodable
/// heartbeats are skipped.
pub fn workers_by_platform(heartbeats: &[Vec<u8>]) -> BTreeMap<String, PlatformWorkers> {
    let mut by_platform: BTreeMap<String, PlatformWorkers> = BTreeMap::new();
    for beat in heartbeats.iter().filter_map(|b| WorkerHeartbeat::decode(b.as_slice()).ok()) {
        let (platform, worker) = beat.worker.map(|w| (w.platform, w.worker_id)).unwrap_or_default();
        let entry = by_platform.entry(platform).or_default();
        entry.live += 1;
        if beat.state == proto::v1::worker_heartbeat::State::Busy as i32 {
            entry.busy += 1;
        }
        entry.errors += beat.errors;
        if !beat.last_error.is_empty() {
            entry.recent_errors.push(RecentError { worker, at_unix_ms: beat.last_error_unix_ms, message: beat.last_error });
        }
    }
    for entry in by_platform.values_mut() {
        entry.recent_errors.sort_by_key(|e| std::cmp::Reverse(e.at_unix_ms));
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
    out.push_str(&format!("{:>10}{:>8}{:>9}{:>9}{:>8}\n", "workers", "done%", "per min", "eta", "errors"));
    for (platform, counts) in &run.platforms {
        let total: u64 = counts.values().sum();
        out.push_str(&format!("{platform:<16}"));
        for c in columns {
            out.push_str(&format!("{:>10}", counts.get(&c).copied().unwrap_or(0)));
        }
        let w = view.workers.get(platform).cloned().unwrap_or_default();
        let done = counts.get(&BatchState::Done).copied().unwrap_or(0);
        let pct = if total == 0 { 0.0 } else { 100.0 * done as f64 / total as f64 };
        let (rate, eta) = match view.pace.get(platform) {
            Some(p) => (format!("{:.1}", p.batches_per_min), p.eta_secs.map_or("-".to_owned(), |s| duration((s * 1000.0) as i64))),
            None => ("-".to_owned(), "-".to_owned()),
        };
        let eta = if finished(counts) == total { "done".to_owned() } else { eta };
        out.push_str(&format!("{:>10}{pct:>7.1}%{rate:>9}{eta:>9}{:>8}\n", format!("{}/{}", w.busy, w.live), w.errors));
    }
    let recent: Vec<(&String, &RecentError)> =
        view.workers.iter().flat_map(|(platform, w)| w.recent_errors.iter().take(RECENT_ERRORS).map(move |e| (platform, e))).collect();
    if !recent.is_empty() {
        out.push_str("recent errors:\n");
        for (platform, e) in recent {
            out.push_str(&format!("  {platform:<14} {:<20} {:>7} ago  {}\n", e.worker, duration(now_ms - e.at_unix_ms), e.message));
        }
    }
    out
}

/// Recent errors shown per platform.
const RECENT_ERRORS: usize = 3;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_shows_every_platform_with_its_counts() {
        let mut platforms = BTreeMap::new();
        platforms.insert("aws".to_owned(), BTreeMap::from([(BatchState::Done, 3), (BatchState::Queued, 1)]));
        platforms.insert("azure".to_owned(), BTreeMap::from([(BatchState::Running, 2), (BatchState::Failed, 2)]));
        let run = RunProgress {
                run_id: "r".into(),
                total: 8,
                created_unix_ms: 0,
                started_unix_ms: Some(1_000),
                finished_unix_ms: None,
                cancelled: false,
                platforms,
        };
        let beat = |id: &str, errors: u64, last: &str, at: i64| {
            WorkerHeartbeat {
                worker: Some(proto::v1::WorkerIdentity { worker_id: id.into(), platform: "aws".into(), ..Default::default() }),
                state: proto::v1::worker_heartbeat::State::Busy as i32,
                errors,
                last_error: last.into(),
                last_error_unix_ms: at,
                ..Default::default()
            }
            .encode_to_vec()
        };
        let workers = workers_by_platform(&[beat("w1", 2, "batch r/0/aws/1: 2 failed requests (2 timeout)", 50_000), beat("w2", 0, "", 0), b"junk".to_vec()]);
        let view = StatusView::new(run, workers, 61_000);
        let text = render(&view, 61_000);
        assert!(text.starts_with("run r · 8 batches · running for 1m00s\n"), "{text}");
        let aws = text.lines().find(|l| l.starts_with("aws")).unwrap();
        // 3 of 4 finished in 60 s: 3 per minute, the last one due in 20 s; 2 errors.
        let cells: Vec<String> = aws.split_whitespace().map(String::from).collect();
        assert_eq!(cells[8..], ["2/2", "75.0%", "3.0", "20s", "2"], "{aws}");
        let azure: Vec<String> = text.lines().find(|l| l.starts_with("azure")).unwrap().split_whitespace().map(String::from).collect();
        assert_eq!(azure[8..], ["0/0", "0.0%", "2.0", "1m00s", "0"], "{azure:?}");
        assert!(text.contains("recent errors:\n  aws            w1                       11s ago  batch r/0/aws/1: 2 failed requests (2 timeout)\n"), "{text}");
    }

    #[test]
    fn the_recent_pace_is_over_the_last_minute_once_ten_seconds_are_seen() {
        let counts = |done: u64, queued: u64| BTreeMap::from([("aws".to_owned(), BTreeMap::from([(BatchState::Done, done), (BatchState::Queued, queued)]))]);
        let mut pace = RecentPace::default();
        assert!(pace.update(0, &counts(0, 40)).is_empty(), "one sample is no pace");
        assert!(pace.update(9_999, &counts(5, 35)).is_empty(), "under ten seconds is no pace");
        // 10 batches in 20 s with 30 left: 30 a minute, done in 60 s.
        let now = pace.update(20_000, &counts(10, 30));
        assert_eq!(now["aws"], Pace { batches_per_min: 30.0, eta_secs: Some(60.0) });
        // At 69 s the first sample is over a minute old: the pace is from the 9.999 s one on, 5
        // batches in 59.001 s.
        let later = pace.update(69_000, &counts(10, 30));
        assert!((later["aws"].batches_per_min - 5.0 * 60.0 / 59.001).abs() < 1e-9, "{later:?}");
        // At 80 s the oldest is the 20 s one (exactly a minute old, kept): nothing finished since.
        let stalled = pace.update(80_000, &counts(10, 30));
        assert_eq!(stalled["aws"], Pace { batches_per_min: 0.0, eta_secs: None }, "nothing finished in the window: no ETA");
        // At 85 s the oldest left is the 69 s one (10 worked): 15 in 16 s, 15 left.
        let resumed = pace.update(85_000, &counts(25, 15));
        assert_eq!(resumed["aws"], Pace { batches_per_min: 56.25, eta_secs: Some(16.0) });
    }
}

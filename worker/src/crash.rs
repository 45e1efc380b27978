//! Crash points for the fault-injection suite: with `CLOUDBENCH_CRASH_AT=POINT[:N]` the worker aborts
//! the N-th time (the first by default) it reaches POINT, as abruptly as a `SIGKILL` would stop it:
//! no acknowledgement, no clean-up, no goodbye to the broker. `POINT@B` aborts every time POINT is
//! reached with batch B in hand: a poison job, which kills whichever worker takes it. Unset, each
//! point costs one relaxed atomic load.
//!
//! Points, in the order a batch passes them: `claimed` (the run state says running, nothing uploaded),
//! `uploaded` (the batch is in the bucket, not yet downloaded), `downloaded` (before inference),
//! `published` (the metrics are on the broker, the batch not yet recorded done), `recorded` (done in
//! the run state, the job not yet acknowledged).

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

pub const POINTS: &[&str] = &["claimed", "uploaded", "downloaded", "published", "recorded"];

/// Where and when to crash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub point: String,
    /// The passage that crashes (from 1), when no batch is named.
    pub nth: u64,
    /// Crash at every passage with this batch index in hand.
    pub batch: Option<u32>,
}

static PLAN: OnceLock<Option<Plan>> = OnceLock::new();
static REACHED: AtomicU64 = AtomicU64::new(0);
static CURRENT: AtomicU64 = AtomicU64::new(u64::MAX);

/// Parses `POINT[:N]` or `POINT@BATCH`.
pub fn parse(text: &str) -> Result<Plan, String> {
    let unknown = |point: &str| format!("CLOUDBENCH_CRASH_AT: unknown point {point:?} (one of {})", POINTS.join(", "));
    if let Some((point, batch)) = text.split_once('@') {
        if !POINTS.contains(&point) {
            return Err(unknown(point));
        }
        let batch = batch.parse().map_err(|_| format!("CLOUDBENCH_CRASH_AT: {batch:?} is not a batch index"))?;
        return Ok(Plan { point: point.to_owned(), nth: 0, batch: Some(batch) });
    }
    let (point, nth) = text.split_once(':').unwrap_or((text, "1"));
    if !POINTS.contains(&point) {
        return Err(unknown(point));
    }
    let nth = nth.parse::<u64>().ok().filter(|n| *n > 0).ok_or_else(|| format!("CLOUDBENCH_CRASH_AT: {nth:?} is not a count from 1"))?;
    Ok(Plan { point: point.to_owned(), nth, batch: None })
}

/// Records the batch the worker now has in hand (one at a time).
pub fn holding(batch_index: u32) {
    CURRENT.store(u64::from(batch_index), Ordering::Relaxed);
}

/// Reads `CLOUDBENCH_CRASH_AT` once; a malformed value is an error at start-up, not a silent no-op.
pub fn init() -> Result<(), String> {
    let plan = match std::env::var("CLOUDBENCH_CRASH_AT") {
        Ok(text) if !text.is_empty() => Some(parse(&text)?),
        _ => None,
    };
    if let Some(plan) = &plan {
        tracing::warn!(?plan, "crash point armed (fault injection)");
    }
    let _ = PLAN.set(plan);
    Ok(())
}

/// Aborts the process if this is the armed point's N-th passage.
pub fn point(name: &str) {
    let Some(Some(plan)) = PLAN.get() else { return };
    if plan.point != name {
        return;
    }
    let crash = match plan.batch {
        Some(batch) => CURRENT.load(Ordering::Relaxed) == u64::from(batch),
        None => REACHED.fetch_add(1, Ordering::Relaxed) + 1 == plan.nth,
    };
    if crash {
        eprintln!("crash point {name} reached: aborting");
        std::process::abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_and_counts() {
        assert_eq!(parse("published").unwrap(), Plan { point: "published".into(), nth: 1, batch: None });
        assert_eq!(parse("uploaded:3").unwrap(), Plan { point: "uploaded".into(), nth: 3, batch: None });
        assert_eq!(parse("claimed@7").unwrap(), Plan { point: "claimed".into(), nth: 0, batch: Some(7) });
        assert!(parse("nowhere").unwrap_err().contains("unknown point"));
        assert!(parse("nowhere@1").unwrap_err().contains("unknown point"));
        assert!(parse("claimed:0").is_err() && parse("claimed:x").is_err() && parse("claimed@x").is_err());
    }
}

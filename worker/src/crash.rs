//! Crash points for the fault-injection suite: with `CLOUDBENCH_CRASH_AT=POINT[:N]` the worker aborts
//! the N-th time (the first by default) it reaches POINT, as abruptly as a `SIGKILL` would stop it:
//! no acknowledgement, no clean-up, no goodbye to the broker. Unset, each point costs one relaxed
//! atomic load.
//!
//! Points, in the order a batch passes them: `claimed` (the run state says running, nothing uploaded),
//! `uploaded` (the batch is in the bucket, not yet downloaded), `downloaded` (before inference),
//! `published` (the metrics are on the broker, the batch not yet recorded done), `recorded` (done in
//! the run state, the job not yet acknowledged).

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

pub const POINTS: &[&str] = &["claimed", "uploaded", "downloaded", "published", "recorded"];

static PLAN: OnceLock<Option<(String, u64)>> = OnceLock::new();
static REACHED: AtomicU64 = AtomicU64::new(0);

/// Parses `POINT[:N]`.
pub fn parse(text: &str) -> Result<(String, u64), String> {
    let (point, nth) = text.split_once(':').unwrap_or((text, "1"));
    if !POINTS.contains(&point) {
        return Err(format!("CLOUDBENCH_CRASH_AT: unknown point {point:?} (one of {})", POINTS.join(", ")));
    }
    let nth = nth.parse::<u64>().ok().filter(|n| *n > 0).ok_or_else(|| format!("CLOUDBENCH_CRASH_AT: {nth:?} is not a count from 1"))?;
    Ok((point.to_owned(), nth))
}

/// Reads `CLOUDBENCH_CRASH_AT` once; a malformed value is an error at start-up, not a silent no-op.
pub fn init() -> Result<(), String> {
    let plan = match std::env::var("CLOUDBENCH_CRASH_AT") {
        Ok(text) if !text.is_empty() => Some(parse(&text)?),
        _ => None,
    };
    if let Some((point, nth)) = &plan {
        tracing::warn!(point, nth, "crash point armed (fault injection)");
    }
    let _ = PLAN.set(plan);
    Ok(())
}

/// Aborts the process if this is the armed point's N-th passage.
pub fn point(name: &str) {
    let Some(Some((point, nth))) = PLAN.get() else { return };
    if point == name && REACHED.fetch_add(1, Ordering::Relaxed) + 1 == *nth {
        eprintln!("crash point {name} reached: aborting");
        std::process::abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_and_counts() {
        assert_eq!(parse("published").unwrap(), ("published".to_owned(), 1));
        assert_eq!(parse("uploaded:3").unwrap(), ("uploaded".to_owned(), 3));
        assert!(parse("nowhere").unwrap_err().contains("unknown point"));
        assert!(parse("claimed:0").is_err() && parse("claimed:x").is_err());
    }
}

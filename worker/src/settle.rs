//! How a worker settles a delivery, decided from what happened to it (pure): acknowledge it, drop
//! it as a copy, return it to its queue (after a backoff when the platform failed), or dead-letter it.
//!
//! The runner finds out what happened (decoding, claiming, running the phases, recording the
//! result), asks [`settle`], and then does the I/O the answer calls for.

use std::time::Duration;

use control::consume::backoff;

/// What happened to a delivery, as far as settling it goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Happened {
    /// The message does not decode, names another platform, asks for an unusable load, or belongs
    /// to no known run.
    Malformed,
    /// The job's deadline passed before it was claimed.
    PastDeadline,
    /// Another copy of the job ran or runs.
    Duplicate,
    /// The job's run was cancelled.
    Cancelled,
    /// The run-state store did not answer (claiming the job, or recording its result) even after
    /// retries; the batch's state is left as it is, and the next claim sees it again.
    StoreAway,
    /// The phases finished, the metrics are published and the batch is recorded done.
    Done,
    /// The platform could not serve the batch at all (bad credentials, missing bucket, endpoint down).
    PlatformFailed,
    /// Shutdown came and the grace period ran out.
    Interrupted,
}

/// What the worker does with a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settle {
    /// Acknowledge: the batch is done.
    Ack,
    /// Acknowledge and drop: the job needs no run from this worker.
    Drop(Dropped),
    /// Return the job to its queue after `after` (zero: at once). With `unclaim`, the batch this
    /// worker holds goes back to `queued` first, so that the next claim finds it free.
    Return { after: Duration, unclaim: bool },
    /// Dead-letter the job, for the reason given.
    DeadLetter(Reason),
}

/// Why a job is dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dropped {
    Duplicate,
    Cancelled,
}

/// Why a job is dead-lettered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Not a job any worker can run; its batch's state is left alone.
    Malformed,
    /// Given up (past its deadline, or at its delivery limit): its batch is marked `failed`.
    Failed,
}

impl Settle {
    /// The outcome's label in `cloudbench_worker_jobs_total` (and the counter of [`WorkerStats`]
    /// it adds to).
    ///
    /// [`WorkerStats`]: crate::runner::WorkerStats
    pub fn outcome(&self) -> &'static str {
        match self {
            Settle::Ack => "done",
            Settle::Drop(Dropped::Duplicate) => "duplicates",
            Settle::Drop(Dropped::Cancelled) => "cancelled",
            Settle::Return { .. } => "returned",
            Settle::DeadLetter(Reason::Malformed) => "malformed",
            Settle::DeadLetter(Reason::Failed) => "failed",
        }
    }
}

/// Decides how to settle a delivery that `happened` so, the message having been delivered
/// `previous_deliveries` times before this delivery, with the job's delivery limit `max_deliveries`
/// (0: none).
///
/// A platform failure returns the job with the backoff of its delivery count (100 ms × 2^n, at most
/// 10 s: [`control::consume::backoff`]), until the delivery that reaches the limit, which fails the
/// batch and dead-letters the job. Shutdown and an unreachable run-state store return it at once.
pub fn settle(happened: Happened, previous_deliveries: u32, max_deliveries: u32) -> Settle {
    match happened {
        Happened::Malformed => Settle::DeadLetter(Reason::Malformed),
        Happened::PastDeadline => Settle::DeadLetter(Reason::Failed),
        Happened::Duplicate => Settle::Drop(Dropped::Duplicate),
        Happened::Cancelled => Settle::Drop(Dropped::Cancelled),
        Happened::StoreAway => Settle::Return { after: Duration::ZERO, unclaim: false },
        Happened::Done => Settle::Ack,
        Happened::PlatformFailed => {
            let deliveries = previous_deliveries.saturating_add(1);
            if max_deliveries > 0 && deliveries >= max_deliveries {
                Settle::DeadLetter(Reason::Failed)
            } else {
                Settle::Return { after: backoff(deliveries), unclaim: true }
            }
        }
        Happened::Interrupted => Settle::Return { after: Duration::ZERO, unclaim: true },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AT_ONCE: Duration = Duration::ZERO;

    #[test]
    fn each_happening_has_its_settlement() {
        assert_eq!(settle(Happened::Done, 0, 5), Settle::Ack);
        assert_eq!(settle(Happened::Duplicate, 1, 5), Settle::Drop(Dropped::Duplicate));
        assert_eq!(settle(Happened::Cancelled, 0, 5), Settle::Drop(Dropped::Cancelled));
        assert_eq!(settle(Happened::Malformed, 0, 5), Settle::DeadLetter(Reason::Malformed));
        assert_eq!(settle(Happened::PastDeadline, 0, 5), Settle::DeadLetter(Reason::Failed));
        // The store's state is unknown: the batch is left as it is for the next claim to see.
        assert_eq!(settle(Happened::StoreAway, 0, 5), Settle::Return { after: AT_ONCE, unclaim: false });
        // Shutdown is not the job's fault: no backoff, and no delivery spent toward the limit.
        assert_eq!(settle(Happened::Interrupted, 0, 5), Settle::Return { after: AT_ONCE, unclaim: true });
        assert_eq!(settle(Happened::Interrupted, 4, 5), Settle::Return { after: AT_ONCE, unclaim: true });
    }

    #[test]
    fn a_platform_failure_returns_the_job_with_a_backoff_that_doubles_up_to_ten_seconds() {
        let after = |previous| match settle(Happened::PlatformFailed, previous, 0) {
            Settle::Return { after, unclaim: true } => after,
            other => panic!("delivery {}: {other:?}", previous + 1),
        };
        // The n-th delivery failed waits 100 ms × 2^n.
        assert_eq!(after(0), Duration::from_millis(200));
        assert_eq!(after(1), Duration::from_millis(400));
        assert_eq!(after(2), Duration::from_millis(800));
        assert_eq!(after(5), Duration::from_millis(6_400));
        // 12.8 s from the 7th on, capped at 10 s.
        assert_eq!(after(6), Duration::from_secs(10));
        assert_eq!(after(50), Duration::from_secs(10));
        assert_eq!(after(u32::MAX), Duration::from_secs(10));
    }

    #[test]
    fn the_delivery_that_reaches_the_limit_fails_the_batch() {
        // delivery_limit = 5: deliveries before a failing job is dead-lettered.
        assert!(matches!(settle(Happened::PlatformFailed, 3, 5), Settle::Return { .. }), "4th delivery");
        assert_eq!(settle(Happened::PlatformFailed, 4, 5), Settle::DeadLetter(Reason::Failed), "5th delivery");
        assert_eq!(settle(Happened::PlatformFailed, 9, 5), Settle::DeadLetter(Reason::Failed), "past the limit");
        assert_eq!(settle(Happened::PlatformFailed, 0, 1), Settle::DeadLetter(Reason::Failed), "a limit of one");
        assert!(matches!(settle(Happened::PlatformFailed, 1_000, 0), Settle::Return { .. }), "0: no limit");
    }

    #[test]
    fn outcomes_are_the_metric_labels() {
        let labels: Vec<&str> = [
            Settle::Ack,
            Settle::Drop(Dropped::Duplicate),
            Settle::Drop(Dropped::Cancelled),
            Settle::DeadLetter(Reason::Malformed),
            Settle::Return { after: AT_ONCE, unclaim: false },
            Settle::DeadLetter(Reason::Failed),
        ]
        .iter()
        .map(Settle::outcome)
        .collect();
        // As README lists `cloudbench_worker_jobs_total{outcome}`.
        assert_eq!(labels, ["done", "duplicates", "cancelled", "malformed", "returned", "failed"]);
    }
}

//! The state machine of a batch, as pure data: which transitions each actor may make.
//!
//! ```text
//!  pending ──coordinator──▶ enqueuing ──confirmed──▶ queued ──worker──▶ running ──▶ done
//!     ▲                        ▲                                          │  │
//!     │                        └───────── coordinator run again ◀─ failed ◀┘  └─▶ queued (returned)
//!  (created)          cancel: pending / enqueuing / queued ──▶ cancelled
//! ```
//!
//! A batch is published only after the coordinator moved it to `enqueuing`, so a restarted coordinator
//! publishes again only batches it cannot prove were confirmed (`enqueuing`), never `queued` ones. If the
//! broker had in fact confirmed such a batch before the crash, two copies exist; the worker's claim
//! ([`claim_from`]) lets exactly one of them run, and the other is dropped as a duplicate.

use std::fmt;
use std::str::FromStr;

/// Where one batch of one platform and round stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BatchState {
    Pending,
    Enqueuing,
    Queued,
    Running,
    Done,
    Failed,
    Cancelled,
}

impl BatchState {
    /// Every state, in the order of the diagram.
    pub const ALL: [BatchState; 7] = [
        BatchState::Pending,
        BatchState::Enqueuing,
        BatchState::Queued,
        BatchState::Running,
        BatchState::Done,
        BatchState::Failed,
        BatchState::Cancelled,
    ];

    /// Lowercase name, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            BatchState::Pending => "pending",
            BatchState::Enqueuing => "enqueuing",
            BatchState::Queued => "queued",
            BatchState::Running => "running",
            BatchState::Done => "done",
            BatchState::Failed => "failed",
            BatchState::Cancelled => "cancelled",
        }
    }

    /// True when nothing more will happen to the batch unless someone starts the run again.
    pub fn is_terminal(self) -> bool {
        matches!(self, BatchState::Done | BatchState::Failed | BatchState::Cancelled)
    }
}

impl fmt::Display for BatchState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for BatchState {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        BatchState::ALL.into_iter().find(|b| b.as_str() == s).ok_or_else(|| format!("unknown batch state {s:?}"))
    }
}

/// States from which the coordinator (re)publishes a batch when a run is started or resumed: never
/// `queued` or `running` (already in a queue) nor `done`.
pub const ENQUEUE_FROM: &[BatchState] =
    &[BatchState::Pending, BatchState::Enqueuing, BatchState::Failed, BatchState::Cancelled];

/// States from which a publish confirm moves a batch to `queued`.
pub const CONFIRMED_FROM: &[BatchState] = &[BatchState::Enqueuing];

/// States from which a worker may claim a delivered job.
///
/// A redelivery (the broker returned the message after its previous consumer died or gave it back)
/// may take over a `running` batch; a first delivery of a `running` batch is a second copy of a job
/// that another worker holds, and must not run.
pub fn claim_from(redelivered: bool) -> &'static [BatchState] {
    if redelivered {
        &[BatchState::Pending, BatchState::Enqueuing, BatchState::Queued, BatchState::Running]
    } else {
        &[BatchState::Pending, BatchState::Enqueuing, BatchState::Queued]
    }
}

/// States from which a worker's result is recorded (`done` or `failed`); a batch that was cancelled
/// or already finished keeps its state.
pub const FINISH_FROM: &[BatchState] = &[BatchState::Enqueuing, BatchState::Queued, BatchState::Running];

/// States a batch leaves when its run is cancelled: everything not yet in a worker's hands.
pub const CANCEL_FROM: &[BatchState] = &[BatchState::Pending, BatchState::Enqueuing, BatchState::Queued];

/// What a worker does with a job it could not claim, given the batch's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unclaimed {
    /// The batch is already `running` under this worker's id: an earlier claim of ours went through
    /// though its answer was lost (the store restarted mid-call). Run it.
    Mine,
    /// Another copy of the job ran or runs: acknowledge and drop this one.
    Duplicate,
    /// The run was cancelled: acknowledge and drop.
    Cancelled,
}

/// Classifies a refused claim by the state and owner that refused it; `me` is the claiming worker.
pub fn unclaimed(state: BatchState, owner: &str, me: &str) -> Unclaimed {
    match state {
        BatchState::Running if owner == me => Unclaimed::Mine,
        BatchState::Cancelled => Unclaimed::Cancelled,
        _ => Unclaimed::Duplicate,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_actor_may_publish_or_claim_a_finished_batch() {
        assert!(!ENQUEUE_FROM.contains(&BatchState::Done));
        assert!(!ENQUEUE_FROM.contains(&BatchState::Queued) && !ENQUEUE_FROM.contains(&BatchState::Running));
        for redelivered in [false, true] {
            assert!(claim_from(redelivered).iter().all(|s| !s.is_terminal()));
        }
        assert!(FINISH_FROM.iter().chain(CANCEL_FROM).all(|s| !s.is_terminal()));
    }

    #[test]
    fn only_a_redelivery_takes_over_a_running_batch() {
        assert!(claim_from(true).contains(&BatchState::Running));
        assert!(!claim_from(false).contains(&BatchState::Running));
        assert_eq!(unclaimed(BatchState::Running, "w1", "w2"), Unclaimed::Duplicate);
        assert_eq!(unclaimed(BatchState::Running, "w2", "w2"), Unclaimed::Mine);
        assert_eq!(unclaimed(BatchState::Done, "", "w2"), Unclaimed::Duplicate);
        assert_eq!(unclaimed(BatchState::Cancelled, "", "w2"), Unclaimed::Cancelled);
    }

    #[test]
    fn states_round_trip_through_their_names() {
        for s in BatchState::ALL {
            assert_eq!(s.as_str().parse::<BatchState>().unwrap(), s);
        }
        assert!("bogus".parse::<BatchState>().is_err());
    }
}

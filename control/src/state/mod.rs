//! Run state: the state of every batch of a run, progress counts, and worker heartbeats.
//!
//! The one write primitive is [`RunStore::transition`], an atomic compare-and-set over many batches:
//! each change applies only if the batch is in one of the states it names. Which changes each actor
//! asks for is decided by the pure rules in [`rules`]; the stores only apply them atomically and keep
//! the per-platform counters and the run's start and end times consistent with the batch states.

mod memory;
#[cfg(feature = "redis")]
mod redis;
pub mod rules;

use std::collections::BTreeMap;

use async_trait::async_trait;

pub use memory::MemoryStore;
#[cfg(feature = "redis")]
pub use redis::RedisStore;
pub use rules::BatchState;

/// A run-state failure.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The store is unreachable or failed; retry with backoff.
    #[error("run-state store unavailable: {0}")]
    Unavailable(String),
    /// The run was created before with another plan; starting it again would mix two experiments.
    #[error("run {run_id} exists with a different plan (batches, platforms or rounds changed); choose another run id")]
    PlanMismatch { run_id: String },
    #[error("run {0} not found")]
    UnknownRun(String),
    #[error("corrupt run state: {0}")]
    Corrupt(String),
}

/// One batch of one platform in one round.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BatchRef {
    pub platform: String,
    pub round: u32,
    pub index: u32,
}

impl BatchRef {
    /// Field name in the store: `platform|round|index`.
    pub fn field(&self) -> String {
        format!("{}|{}|{}", self.platform, self.round, self.index)
    }

    /// Parses a field name written by [`BatchRef::field`].
    pub fn parse_field(field: &str) -> Result<Self, StateError> {
        let corrupt = || StateError::Corrupt(format!("batch field {field:?}"));
        let mut parts = field.split('|');
        let (Some(platform), Some(round), Some(index), None) = (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(corrupt());
        };
        Ok(Self {
            platform: platform.to_owned(),
            round: round.parse().map_err(|_| corrupt())?,
            index: index.parse().map_err(|_| corrupt())?,
        })
    }
}

/// The stored status of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchStatus {
    pub state: BatchState,
    /// Enqueue attempts so far (1 after the first publish).
    pub attempt: u32,
    /// Worker holding the batch while `running`.
    pub owner: String,
}

impl BatchStatus {
    /// Encodes as `state|attempt|owner`, the stored form.
    pub fn encode(&self) -> String {
        format!("{}|{}|{}", self.state, self.attempt, self.owner)
    }

    /// Decodes the stored form.
    pub fn decode(value: &str) -> Result<Self, StateError> {
        let corrupt = || StateError::Corrupt(format!("batch status {value:?}"));
        let mut parts = value.splitn(3, '|');
        let state = parts.next().ok_or_else(corrupt)?.parse().map_err(|_| corrupt())?;
        let attempt = parts.next().ok_or_else(corrupt)?.parse().map_err(|_| corrupt())?;
        let owner = parts.next().unwrap_or("").to_owned();
        Ok(Self { state, attempt, owner })
    }

    /// Status of a batch just planned.
    pub fn planned() -> Self {
        Self { state: BatchState::Pending, attempt: 0, owner: String::new() }
    }
}

/// A conditional change of one batch.
#[derive(Debug, Clone)]
pub struct Change {
    pub batch: BatchRef,
    /// The change applies only if the batch is in one of these states.
    pub from: &'static [BatchState],
    pub to: BatchState,
    /// Worker recorded as owner (empty clears it).
    pub owner: String,
    /// Adds one to the enqueue attempt (when publishing).
    pub bump_attempt: bool,
}

/// Result of one [`Change`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Applied; holds the status before the change.
    Applied(BatchStatus),
    /// Refused because the batch was in another state; holds its status.
    Refused(BatchStatus),
    /// The run has no such batch.
    Missing,
}

/// What identifies a run and its plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunMeta {
    pub run_id: String,
    /// Hash of the plan; starting an existing run with another plan is refused.
    pub fingerprint: String,
    pub platforms: Vec<String>,
    pub rounds: u32,
    pub batches_per_round: u32,
    /// Run spec as given, for the report.
    pub spec: String,
}

impl RunMeta {
    /// Number of batches of the whole run.
    pub fn total(&self) -> u64 {
        self.platforms.len() as u64 * u64::from(self.rounds) * u64::from(self.batches_per_round)
    }

    /// Every batch of the run, platform by platform, round by round.
    pub fn batches(&self) -> impl Iterator<Item = BatchRef> + '_ {
        self.platforms.iter().flat_map(move |p| {
            (0..self.rounds).flat_map(move |round| {
                (0..self.batches_per_round).map(move |index| BatchRef { platform: p.clone(), round, index })
            })
        })
    }
}

/// A run as stored, with its progress.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RunProgress {
    pub run_id: String,
    pub total: u64,
    pub created_unix_ms: i64,
    /// When the first batch started running.
    pub started_unix_ms: Option<i64>,
    /// When every batch reached a terminal state (cleared if the run is started again).
    pub finished_unix_ms: Option<i64>,
    pub cancelled: bool,
    /// Batch counts by platform and state.
    pub platforms: BTreeMap<String, BTreeMap<BatchState, u64>>,
}

impl RunProgress {
    /// Batches in `state` over all platforms.
    pub fn count(&self, state: BatchState) -> u64 {
        self.platforms.values().map(|m| m.get(&state).copied().unwrap_or(0)).sum()
    }

    /// True when the run is complete and `stored` metrics cover every done batch: the point where a
    /// collector (or the embedded run) has everything the run will produce.
    pub fn is_collected(&self, stored: u64) -> bool {
        self.is_complete() && stored >= self.count(BatchState::Done)
    }

    /// True when every batch is done, failed or cancelled.
    pub fn is_complete(&self) -> bool {
        let terminal: u64 = BatchState::ALL.iter().filter(|s| s.is_terminal()).map(|s| self.count(*s)).sum();
        terminal >= self.total
    }
}

/// Where run state lives: Redis in a deployment, memory in the embedded run.
#[async_trait]
pub trait RunStore: Send + Sync {
    /// Creates the run with every batch `pending`, or checks that an existing run has the same plan.
    /// Returns true when the run is new. Idempotent.
    async fn create_run(&self, meta: &RunMeta, now_ms: i64) -> Result<bool, StateError>;

    /// Returns the run's progress, or `None` when there is no such run.
    async fn progress(&self, run_id: &str) -> Result<Option<RunProgress>, StateError>;

    /// Returns the stored run spec.
    async fn spec(&self, run_id: &str) -> Result<String, StateError>;

    /// Applies each change atomically and returns one outcome per change, in order.
    async fn transition(&self, run_id: &str, changes: &[Change], now_ms: i64) -> Result<Vec<Outcome>, StateError>;

    /// Returns every batch whose state is in `states`.
    async fn batches_in(&self, run_id: &str, states: &[BatchState]) -> Result<Vec<(BatchRef, BatchStatus)>, StateError>;

    /// Marks the run cancelled (or not); workers drop its jobs while it is.
    async fn set_cancelled(&self, run_id: &str, cancelled: bool) -> Result<(), StateError>;

    /// True when the run is cancelled; false for an unknown run.
    async fn is_cancelled(&self, run_id: &str) -> Result<bool, StateError>;

    /// Stores a worker's heartbeat (an encoded `WorkerHeartbeat`) for `ttl_ms`.
    async fn heartbeat(&self, worker_id: &str, payload: &[u8], ttl_ms: u64) -> Result<(), StateError>;

    /// Returns the heartbeats of workers seen within their time-to-live.
    async fn heartbeats(&self) -> Result<Vec<Vec<u8>>, StateError>;

    /// Returns the store's own clock, Unix microseconds: the clock every worker's is compared with.
    async fn clock_us(&self) -> Result<i64, StateError>;

    /// Keeps the result of a batch (its encoded `BatchMetrics`) for whoever decides on it: a load
    /// sweep's next stage follows from the last one's. Writing it again replaces it.
    async fn put_result(&self, run_id: &str, batch: &BatchRef, payload: &[u8]) -> Result<(), StateError>;

    /// Returns the results kept for the run, in batch order.
    async fn results(&self, run_id: &str) -> Result<Vec<(BatchRef, Vec<u8>)>, StateError>;
}

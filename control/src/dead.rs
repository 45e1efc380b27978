//! Batches whose job the broker dead-lettered behind the workers' backs.
//!
//! A worker that finds a job failing at its delivery limit marks the batch `failed` itself. A job
//! that kills every worker that takes it (a poison job) never gets that far: each crash returns it to
//! the queue, and at the queue's delivery limit the broker moves it to the dead-letter queue, while
//! the run state still says `running` (or `queued`), so the run would never complete. Reading the
//! dead-letter queue (without taking anything out of it, it is there to be inspected) finds those
//! jobs; the batches still in flight with the same enqueue attempt are marked `failed`. A batch run
//! again since (a later attempt) is left alone.

use std::collections::HashMap;
#[cfg(feature = "rabbitmq")]
use std::time::{Duration, Instant};

use crate::state::{BatchRef, BatchState, Change, Outcome};
#[cfg(feature = "rabbitmq")]
use crate::AmqpBroker;
use crate::{Broker, BrokerError, Namespace, RunStore, StateError};

/// Most dead letters read at once.
const PEEK: usize = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum DeadLetterError {
    #[error(transparent)]
    Broker(#[from] BrokerError),
    #[error(transparent)]
    State(#[from] StateError),
}

/// Marks `failed` every batch of `run_id` whose job (same attempt) is in the dead-letter queue while
/// the run state has it queued or running; returns how many it marked.
pub async fn fail_dead_lettered(broker: &dyn Broker, store: &dyn RunStore, ns: &Namespace, run_id: &str) -> Result<u64, DeadLetterError> {
    if broker.depth(&ns.dead_letter_queue()).await? == 0 {
        return Ok(0);
    }
    let mut dead: HashMap<BatchRef, u32> = HashMap::new();
    for payload in broker.peek(&ns.dead_letter_queue(), PEEK).await? {
        // Undecodable messages and jobs of other runs are someone else's business.
        let Ok((key, job)) = proto::validate::batch_job(&payload) else { continue };
        if key.run_id == run_id {
            dead.insert(BatchRef { platform: key.platform, round: key.round, index: key.batch_index }, job.attempt);
        }
    }
    if dead.is_empty() {
        return Ok(0);
    }
    const IN_FLIGHT: &[BatchState] = &[BatchState::Queued, BatchState::Running];
    let changes: Vec<Change> = store
        .batches_in(run_id, IN_FLIGHT)
        .await?
        .into_iter()
        .filter(|(batch, status)| dead.get(batch) == Some(&status.attempt))
        .map(|(batch, _)| Change { batch, from: IN_FLIGHT, to: BatchState::Failed, owner: String::new(), bump_attempt: false })
        .collect();
    if changes.is_empty() {
        return Ok(0);
    }
    let outcomes = store.transition(run_id, &changes, crate::now_ms()).await?;
    let failed = outcomes.iter().filter(|o| matches!(o, Outcome::Applied(_))).count() as u64;
    for (change, outcome) in changes.iter().zip(&outcomes) {
        if matches!(outcome, Outcome::Applied(_)) {
            tracing::warn!(run_id, batch = %change.batch.field(), "job dead-lettered by the broker at its delivery limit (it kept killing workers): batch failed");
        }
    }
    Ok(failed)
}

/// How often a [`DeadLetterWatch`] reads the dead-letter queue.
#[cfg(feature = "rabbitmq")]
const EVERY: Duration = Duration::from_secs(5);

/// [`fail_dead_lettered`] for one run, at most every few seconds, over a broker connection of its
/// own (opened on first use and again after a failure), for loops that poll a run anyway.
#[cfg(feature = "rabbitmq")]
pub struct DeadLetterWatch {
    amqp_url: String,
    ns: Namespace,
    run_id: String,
    broker: Option<AmqpBroker>,
    next: Instant,
}

#[cfg(feature = "rabbitmq")]
impl DeadLetterWatch {
    pub fn new(amqp_url: &str, ns: &Namespace, run_id: &str) -> Self {
        Self { amqp_url: amqp_url.to_owned(), ns: ns.clone(), run_id: run_id.to_owned(), broker: None, next: Instant::now() }
    }

    /// Reads the dead-letter queue if it is time to; a failure is logged and retried next time.
    pub async fn tick(&mut self, store: &dyn RunStore) {
        if Instant::now() < self.next {
            return;
        }
        self.next = Instant::now() + EVERY;
        if self.broker.is_none() {
            self.broker = AmqpBroker::connect(&self.amqp_url).await.ok();
        }
        if let Some(broker) = &self.broker
            && let Err(e) = fail_dead_lettered(broker, store, &self.ns, &self.run_id).await
        {
            tracing::warn!(error = %e, "dead-letter queue not read");
            self.broker = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::RunMeta;
    use crate::{MemoryBroker, MemoryStore, Outgoing};
    use prost::Message;

    fn job(run_id: &str, index: u32, attempt: u32) -> Outgoing {
        let job = proto::v1::BatchJob {
            run_id: run_id.into(),
            platform: "aws".into(),
            batch_index: index,
            batch_count: 3,
            attempt,
            objects: vec![proto::v1::ObjectRef { key: "a.jpg".into(), size: 1, sha256: "0".repeat(64) }],
            ..Default::default()
        };
        Outgoing { id: format!("{index}"), kind: proto::BATCH_JOB_TYPE, payload: job.encode_to_vec() }
    }

    #[tokio::test]
    async fn only_batches_still_in_flight_with_the_dead_attempt_fail() {
        let (broker, store) = (MemoryBroker::default(), MemoryStore::default());
        let ns = Namespace::new("dead-test").unwrap();
        broker.declare(&ns, &["aws".into()], 3).await.unwrap();
        let meta = RunMeta { run_id: "r".into(), fingerprint: "f".into(), platforms: vec!["aws".into()], rounds: 1, batches_per_round: 3, spec: String::new() };
        store.create_run(&meta, 0).await.unwrap();
        let batch = |index| BatchRef { platform: "aws".into(), round: 0, index };
        // Batch 0 running attempt 1, batch 1 running attempt 2 (run again since), batch 2 done.
        let to = |index, state, bump| Change { batch: batch(index), from: &[BatchState::Pending, BatchState::Queued, BatchState::Running], to: state, owner: String::new(), bump_attempt: bump };
        store.transition("r", &[to(0, BatchState::Queued, true), to(1, BatchState::Queued, true), to(2, BatchState::Queued, true)], 1).await.unwrap();
        store.transition("r", &[to(0, BatchState::Running, false), to(1, BatchState::Queued, true), to(2, BatchState::Done, false)], 2).await.unwrap();
        let garbage = Outgoing { id: "x".into(), kind: "x", payload: b"not a job".to_vec() };
        broker.publish(&ns.dead_letter_queue(), &[job("r", 0, 1), job("r", 1, 1), job("r", 2, 1), job("other", 0, 1), garbage]).await.unwrap();

        assert_eq!(fail_dead_lettered(&broker, &store, &ns, "r").await.unwrap(), 1);
        let progress = store.progress("r").await.unwrap().unwrap();
        assert_eq!((progress.count(BatchState::Failed), progress.count(BatchState::Queued), progress.count(BatchState::Done)), (1, 1, 1));
        assert_eq!(broker.depth(&ns.dead_letter_queue()).await.unwrap(), 5, "the dead letters stay for inspection");
        assert_eq!(fail_dead_lettered(&broker, &store, &ns, "r").await.unwrap(), 0, "idempotent");
    }
}

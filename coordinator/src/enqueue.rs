//! Starting or resuming a run: record the plan, then publish every batch not yet in a queue or done.
//!
//! Each chunk of batches is first moved to `enqueuing` in the run state, then published with
//! publisher confirms, then moved to `queued`. A coordinator that dies anywhere in this sequence is
//! simply run again: `queued`, `running` and `done` batches are never published again, and the
//! batches it cannot prove were confirmed (`enqueuing`) are published once more, where the worker's
//! claim lets only one copy run (see `control::state::rules`).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use control::state::rules::{CONFIRMED_FROM, ENQUEUE_FROM};
use control::state::{BatchRef, BatchState, Change, Outcome, RunMeta};
use control::{Broker, BrokerError, Namespace, Outgoing, RunStore, StateError};
use prost::Message;
use proto::v1::{BatchJob, ObjectRef};

use crate::manifest::Manifest;
use crate::plan;
use crate::spec::RunSpec;

/// Batches moved to `enqueuing` and published together.
const CHUNK: usize = 256;

/// Why a run could not be started.
#[derive(Debug, thiserror::Error)]
pub enum EnqueueError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Broker(#[from] BrokerError),
}

impl EnqueueError {
    /// The broker or the run-state store went away: the same call can succeed once it is back.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::State(StateError::Unavailable(_)) | Self::Broker(BrokerError::Unreachable { .. } | BrokerError::Lost(_)))
    }
}

/// What starting a run did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct EnqueueReport {
    pub run_id: String,
    /// True when the run was created now, false when it was resumed.
    pub created: bool,
    pub batches: u64,
    /// Jobs published now.
    pub published: u64,
    /// Batches left alone because they were already queued, running or done.
    pub skipped: u64,
    #[serde(skip)]
    pub elapsed: Duration,
}

/// Options of [`start_run`].
#[derive(Debug, Clone, Default)]
pub struct EnqueueOptions {
    /// Upper bound on jobs published per second; `None` publishes as fast as confirms come back.
    pub max_rate: Option<f64>,
    /// Publishes only this round's batches (a stage of a scaling run); `None` publishes every round.
    pub round: Option<u32>,
    /// Publishes only this platform's batches (a stage of a load sweep); `None`: every platform.
    pub platform: Option<String>,
    /// The inference load the jobs carry (a stage of a load sweep); `None`: the workers' own.
    pub load: Option<proto::v1::Load>,
}

/// Builds the run's metadata from a validated spec and its manifest.
pub fn run_meta(run_id: &str, spec: &RunSpec, manifest: &Manifest) -> RunMeta {
    RunMeta {
        run_id: run_id.to_owned(),
        fingerprint: plan::fingerprint(spec, manifest),
        platforms: spec.platforms.clone(),
        rounds: spec.rounds,
        // A load sweep's stage is one batch per platform.
        batches_per_round: if spec.load_sweep.is_some() { 1 } else { plan::batch_count(manifest.objects.len(), spec.batch_size) },
        spec: spec.text.clone(),
    }
}

fn job(meta: &RunMeta, spec: &RunSpec, manifest: &Manifest, batch: &BatchRef, attempt: u32, now_ms: i64, load: Option<proto::v1::Load>) -> BatchJob {
    BatchJob {
        run_id: meta.run_id.clone(),
        round: batch.round,
        platform: batch.platform.clone(),
        batch_index: batch.index,
        batch_count: meta.batches_per_round,
        objects: plan::batch(manifest, spec.batch_size, plan::job_batch(spec, manifest, batch.round, batch.index))
            .iter()
            .map(|e| ObjectRef { key: e.key.clone(), size: e.size, sha256: e.sha256.clone() })
            .collect(),
        attempt,
        deadline_unix_ms: spec.job_deadline_secs.map_or(0, |s| now_ms + s as i64 * 1000),
        enqueued_unix_ms: now_ms,
        max_deliveries: spec.delivery_limit,
        manifest_sha256: plan::manifest_hash(manifest),
        load,
    }
}

/// Interleaves the platforms' batches chunk by chunk, so every platform's workers get work at once.
fn interleave(batches: Vec<BatchRef>) -> Vec<Vec<BatchRef>> {
    let mut by_platform: BTreeMap<String, Vec<BatchRef>> = BTreeMap::new();
    for b in batches {
        by_platform.entry(b.platform.clone()).or_default().push(b);
    }
    let mut chunked: Vec<std::vec::IntoIter<Vec<BatchRef>>> = by_platform
        .into_values()
        .map(|v| v.chunks(CHUNK).map(<[BatchRef]>::to_vec).collect::<Vec<_>>().into_iter())
        .collect();
    let mut out = Vec::new();
    loop {
        let before = out.len();
        out.extend(chunked.iter_mut().filter_map(Iterator::next));
        if out.len() == before {
            return out;
        }
    }
}

/// Creates or resumes the run `run_id` and publishes every batch that is not queued, running or done.
pub async fn start_run(
    broker: &dyn Broker,
    store: &dyn RunStore,
    ns: &Namespace,
    run_id: &str,
    spec: &RunSpec,
    manifest: &Manifest,
    options: &EnqueueOptions,
) -> Result<EnqueueReport, EnqueueError> {
    let started = Instant::now();
    let meta = run_meta(run_id, spec, manifest);
    let created = store.create_run(&meta, control::now_ms()).await?;
    if store.is_cancelled(run_id).await? {
        store.set_cancelled(run_id, false).await?;
    }
    broker.declare(ns, &spec.platforms, spec.delivery_limit).await?;
    let todo: Vec<BatchRef> = store
        .batches_in(run_id, ENQUEUE_FROM)
        .await?
        .into_iter()
        .map(|(b, _)| b)
        .filter(|b| options.round.is_none_or(|r| b.round == r) && options.platform.as_ref().is_none_or(|p| &b.platform == p))
        .collect();
    let platforms = if options.platform.is_some() { 1 } else { meta.platforms.len() as u64 };
    let in_scope = match options.round {
        Some(_) => u64::from(meta.batches_per_round) * platforms,
        None => u64::from(meta.batches_per_round) * u64::from(meta.rounds) * platforms,
    };
    let skipped = in_scope - todo.len() as u64;
    let mut published = 0u64;
    for chunk in interleave(todo) {
        let now = control::now_ms();
        let claims: Vec<Change> = chunk
            .iter()
            .map(|b| Change { batch: b.clone(), from: ENQUEUE_FROM, to: BatchState::Enqueuing, owner: String::new(), bump_attempt: true })
            .collect();
        let outcomes = store.transition(run_id, &claims, now).await?;
        let mut messages = Vec::with_capacity(chunk.len());
        let mut claimed = Vec::with_capacity(chunk.len());
        for (batch, outcome) in chunk.iter().zip(outcomes) {
            if let Outcome::Applied(before) = outcome {
                let attempt = before.attempt + 1;
                let job = job(&meta, spec, manifest, batch, attempt, now, options.load);
                let key = proto::JobKey::new(run_id, batch.round, &batch.platform, batch.index).expect("names checked");
                messages.push(Outgoing { id: format!("{key}#{attempt}"), kind: proto::BATCH_JOB_TYPE, payload: job.encode_to_vec() });
                claimed.push(Change { batch: batch.clone(), from: CONFIRMED_FROM, to: BatchState::Queued, owner: String::new(), bump_attempt: false });
            }
        }
        if messages.is_empty() {
            continue;
        }
        broker.publish(&ns.job_queue(&chunk[0].platform), &messages).await?;
        store.transition(run_id, &claimed, control::now_ms()).await?;
        published += messages.len() as u64;
        if let Some(rate) = options.max_rate.filter(|r| *r > 0.0) {
            let due = started + Duration::from_secs_f64(published as f64 / rate);
            tokio::time::sleep_until(due.into()).await;
        }
        tracing::debug!(run_id, published, "published chunk");
    }
    Ok(EnqueueReport { run_id: run_id.to_owned(), created, batches: meta.total(), published, skipped, elapsed: started.elapsed() })
}

/// Cancels a run: workers drop its jobs still in queues; batches already running finish.
/// Returns how many batches were cancelled.
pub async fn cancel_run(store: &dyn RunStore, run_id: &str) -> Result<u64, StateError> {
    store.set_cancelled(run_id, true).await?;
    let open = store.batches_in(run_id, control::state::rules::CANCEL_FROM).await?;
    cancel_batches(store, run_id, open.into_iter().map(|(batch, _)| batch), control::state::rules::CANCEL_FROM).await
}

/// Moves `batches` from any of the states `from` to `cancelled`, a chunk at a time; returns how many
/// moved (a batch that left those states meanwhile is left as it is).
pub async fn cancel_batches(
    store: &dyn RunStore,
    run_id: &str,
    batches: impl IntoIterator<Item = BatchRef>,
    from: &'static [BatchState],
) -> Result<u64, StateError> {
    let changes: Vec<Change> =
        batches.into_iter().map(|batch| Change { batch, from, to: BatchState::Cancelled, owner: String::new(), bump_attempt: false }).collect();
    let mut cancelled = 0;
    for chunk in changes.chunks(CHUNK) {
        let outcomes = store.transition(run_id, chunk, control::now_ms()).await?;
        cancelled += outcomes.iter().filter(|o| matches!(o, Outcome::Applied(_))).count() as u64;
    }
    Ok(cancelled)
}

#[cfg(test)]
mod tests {
    use super::*;
    use control::{MemoryBroker, MemoryStore};

    use crate::manifest::Entry;

    fn fixture(n: usize, platforms: &[&str]) -> (RunSpec, Manifest) {
        let mut text = "manifest = 'm.json'\nbatch_size = 4\n".to_owned();
        for p in platforms {
            text.push_str(&format!("[[platform]]\nname = '{p}'\n"));
        }
        let spec = RunSpec::parse(&text, std::path::Path::new(".")).unwrap();
        let objects = (0..n).map(|i| Entry { key: format!("{i}.jpg"), size: 10, sha256: format!("{i:064x}") }).collect();
        (spec, Manifest::new("t".into(), objects).unwrap())
    }

    #[tokio::test]
    async fn starting_a_run_twice_publishes_each_batch_once() {
        let (broker, store, ns) = (MemoryBroker::new(), MemoryStore::new(), Namespace::new("t").unwrap());
        let (spec, manifest) = fixture(10, &["aws", "azure"]);
        let first = start_run(&broker, &store, &ns, "r1", &spec, &manifest, &Default::default()).await.unwrap();
        assert_eq!((first.created, first.batches, first.published, first.skipped), (true, 6, 6, 0));
        let again = start_run(&broker, &store, &ns, "r1", &spec, &manifest, &Default::default()).await.unwrap();
        assert_eq!((again.created, again.published, again.skipped), (false, 0, 6));
        assert_eq!(broker.depth(&ns.job_queue("aws")).await.unwrap(), 3);
        let jobs = broker.drain(&ns.job_queue("azure"));
        let last = BatchJob::decode(jobs[2].as_slice()).unwrap();
        assert_eq!((last.batch_index, last.batch_count, last.objects.len(), last.attempt), (2, 3, 2, 1));
        assert_eq!(store.progress("r1").await.unwrap().unwrap().count(BatchState::Queued), 6);
    }

    #[tokio::test]
    async fn another_plan_under_the_same_run_id_is_refused() {
        let (broker, store, ns) = (MemoryBroker::new(), MemoryStore::new(), Namespace::new("t").unwrap());
        let (spec, manifest) = fixture(10, &["aws"]);
        start_run(&broker, &store, &ns, "r1", &spec, &manifest, &Default::default()).await.unwrap();
        let (spec2, manifest2) = fixture(11, &["aws"]);
        let err = start_run(&broker, &store, &ns, "r1", &spec2, &manifest2, &Default::default()).await.unwrap_err();
        assert!(matches!(err, EnqueueError::State(StateError::PlanMismatch { .. })), "{err}");
    }

    #[tokio::test]
    async fn cancelling_stops_queued_batches_and_running_again_resumes_them() {
        let (broker, store, ns) = (MemoryBroker::new(), MemoryStore::new(), Namespace::new("t").unwrap());
        let (spec, manifest) = fixture(8, &["aws"]);
        start_run(&broker, &store, &ns, "r1", &spec, &manifest, &Default::default()).await.unwrap();
        assert_eq!(cancel_run(&store, "r1").await.unwrap(), 2);
        let progress = store.progress("r1").await.unwrap().unwrap();
        assert!(progress.cancelled && progress.is_complete());
        let resumed = start_run(&broker, &store, &ns, "r1", &spec, &manifest, &Default::default()).await.unwrap();
        assert_eq!(resumed.published, 2);
        assert!(!store.is_cancelled("r1").await.unwrap());
    }
}

//! Scaling runs: the same batches at several worker counts, one stage after another. Stage `i` is
//! round `i`: before publishing it, the coordinator waits until every platform has the stage's number
//! of live workers (from their heartbeats), or until the spec's wait runs out, in which case the stage
//! starts short and says so; it then publishes the round and waits for all its batches to finish before
//! the next stage. Run again after a crash, it skips the stages already finished.
//!
//! The coordinator does not start workers: the operator (or an autoscaler, or a test) brings each
//! stage's workers up; the analyzer counts the workers that actually ran each round.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use control::state::BatchState;
use control::{Broker, Namespace, RunStore};
use serde::Serialize;

use crate::enqueue::{self, EnqueueError, EnqueueOptions};
use crate::manifest::Manifest;
use crate::spec::{RunSpec, Scaling};
use crate::status::workers_by_platform;

/// States of a batch that is not finished.
const OPEN: &[BatchState] = &[BatchState::Pending, BatchState::Enqueuing, BatchState::Queued, BatchState::Running];

/// How one stage went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StageReport {
    pub stage: u32,
    /// Workers per platform the spec asked for.
    pub target: u32,
    /// Live workers per platform when the stage started.
    pub live: BTreeMap<String, u32>,
    /// True when some platform had fewer than `target` live workers at the start.
    pub short: bool,
    /// True when the stage had finished before (a resumed run).
    pub skipped: bool,
    pub published: u64,
}

/// What the stages tell the person watching.
#[derive(Debug, Clone)]
pub enum StageEvent {
    Waiting { stage: u32, target: u32 },
    Started(StageReport),
    Finished { stage: u32, took: Duration },
}

async fn open_batches(store: &dyn RunStore, run_id: &str, round: u32) -> Result<usize, EnqueueError> {
    Ok(store.batches_in(run_id, OPEN).await?.iter().filter(|(b, _)| b.round == round).count())
}

/// Runs the stages of `scaling`, polling the run state every `poll`.
#[allow(clippy::too_many_arguments)]
pub async fn run_stages(
    broker: &dyn Broker,
    store: &dyn RunStore,
    ns: &Namespace,
    run_id: &str,
    spec: &RunSpec,
    scaling: &Scaling,
    manifest: &Manifest,
    options: &EnqueueOptions,
    poll: Duration,
    mut on_event: impl FnMut(StageEvent),
) -> Result<Vec<StageReport>, EnqueueError> {
    let meta = enqueue::run_meta(run_id, spec, manifest);
    store.create_run(&meta, control::now_ms()).await?;
    let mut reports = Vec::new();
    for (stage, &target) in scaling.workers.iter().enumerate() {
        let stage = stage as u32;
        // A stage is over (a rerun skips it) when none of its batches is open, pending included.
        if open_batches(store, run_id, stage).await? == 0 {
            reports.push(StageReport { stage, target, live: BTreeMap::new(), short: false, skipped: true, published: 0 });
            continue;
        }
        on_event(StageEvent::Waiting { stage, target });
        let deadline = Instant::now() + Duration::from_secs(scaling.wait_secs);
        let live = loop {
            let workers = workers_by_platform(&store.heartbeats().await?);
            let live: BTreeMap<String, u32> = spec.platforms.iter().map(|p| (p.clone(), workers.get(p).map_or(0, |w| w.live))).collect();
            if live.values().all(|n| *n >= target) || Instant::now() >= deadline {
                break live;
            }
            tokio::time::sleep(poll).await;
        };
        let short = live.values().any(|n| *n < target);
        let started = Instant::now();
        let report = enqueue::start_run(broker, store, ns, run_id, spec, manifest, &EnqueueOptions { round: Some(stage), ..options.clone() }).await?;
        let stage_report = StageReport { stage, target, live, short, skipped: false, published: report.published };
        on_event(StageEvent::Started(stage_report.clone()));
        while open_batches(store, run_id, stage).await? > 0 {
            if store.is_cancelled(run_id).await? {
                reports.push(stage_report);
                return Ok(reports);
            }
            tokio::time::sleep(poll).await;
        }
        on_event(StageEvent::Finished { stage, took: started.elapsed() });
        reports.push(stage_report);
    }
    Ok(reports)
}

#[cfg(test)]
mod tests {
    use super::*;
    use control::{MemoryBroker, MemoryStore};
    use prost::Message;
    use proto::v1::{WorkerHeartbeat, WorkerIdentity};

    use crate::manifest::Entry;

    fn beat(id: &str, platform: &str) -> Vec<u8> {
        WorkerHeartbeat { worker: Some(WorkerIdentity { worker_id: id.into(), platform: platform.into(), ..Default::default() }), ..Default::default() }
            .encode_to_vec()
    }

    /// Finishes every queued batch of the run, as workers would.
    async fn finish_queued(store: &MemoryStore, run_id: &str) {
        let queued = store.batches_in(run_id, &[BatchState::Queued]).await.unwrap();
        let changes: Vec<_> = queued
            .into_iter()
            .map(|(batch, _)| control::state::Change { batch, from: &[BatchState::Queued], to: BatchState::Done, owner: String::new(), bump_attempt: false })
            .collect();
        store.transition(run_id, &changes, control::now_ms()).await.unwrap();
    }

    #[tokio::test]
    async fn stages_wait_for_their_workers_publish_one_round_each_and_start_short_when_told() {
        let (broker, store, ns) = (MemoryBroker::new(), MemoryStore::new(), Namespace::new("t").unwrap());
        let text = "manifest = 'm.json'\nbatch_size = 4\n[[platform]]\nname = 'aws'\n[scaling]\nworkers = [1, 2]\nwait_secs = 1\n";
        let spec = RunSpec::parse(text, std::path::Path::new(".")).unwrap();
        let manifest = Manifest::new("t".into(), (0..8).map(|i| Entry { key: format!("{i}.jpg"), size: 1, sha256: format!("{i:064x}") }).collect()).unwrap();
        store.heartbeat("w1", &beat("w1", "aws"), 60_000).await.unwrap();
        let scaling = spec.scaling.clone().unwrap();
        let options = EnqueueOptions::default();
        let run = run_stages(&broker, &store, &ns, "s1", &spec, &scaling, &manifest, &options, Duration::from_millis(5), |_| {});
        let finisher = async {
            // Stage 0 (1 worker) starts at once: two batches of round 0 only.
            loop {
                tokio::time::sleep(Duration::from_millis(20)).await;
                if broker.depth(&ns.job_queue("aws")).await.unwrap() == 2 {
                    break;
                }
            }
            assert!(store.batches_in("s1", &[BatchState::Pending]).await.unwrap().iter().all(|(b, _)| b.round == 1));
            finish_queued(&store, "s1").await;
            // Stage 1 wants 2 workers; only one is alive, so it starts short after its wait.
            loop {
                tokio::time::sleep(Duration::from_millis(20)).await;
                if !store.batches_in("s1", &[BatchState::Queued]).await.unwrap().is_empty() {
                    break;
                }
            }
            finish_queued(&store, "s1").await;
        };
        let (reports, ()) = tokio::join!(run, finisher);
        let reports = reports.unwrap();
        assert_eq!(reports.len(), 2);
        assert_eq!((reports[0].target, reports[0].short, reports[0].published), (1, false, 2));
        assert_eq!((reports[1].target, reports[1].short, reports[1].live["aws"]), (2, true, 1));

        // Run again: both stages are finished and skipped.
        let again = run_stages(&broker, &store, &ns, "s1", &spec, &scaling, &manifest, &options, Duration::from_millis(5), |_| {}).await.unwrap();
        assert!(again.iter().all(|r| r.skipped));
    }
}

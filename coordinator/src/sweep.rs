//! Load sweeps, run: per platform, one stage (a round of one job) at a time, each at the load the
//! sweep decides from the results of the stages before it (`control::sweep`). The platforms go
//! independently: a fast platform's search does not wait for a slow one's stages.
//!
//! Workers keep each stage's result (its `BatchMetrics`) in the run state before they mark the
//! stage done, so the coordinator reads results, not the metrics queue, and a coordinator started
//! again replays them and goes on where the sweep was. When a platform's sweep is over, its
//! remaining rounds (a search plans for its longest course) are cancelled, which completes the run.

use std::collections::BTreeMap;
use std::time::Duration;

use control::state::{BatchRef, BatchState};
use control::sweep::{LoadSweep, Next, StageLoad, StageResult};
use control::{Broker, Namespace, RunStore};
use prost::Message;
use proto::v1::BatchMetrics;

use crate::enqueue::{self, EnqueueError, EnqueueOptions};
use crate::manifest::Manifest;
use crate::spec::RunSpec;

/// What the sweep tells the person watching.
#[derive(Debug, Clone, PartialEq)]
pub enum SweepEvent {
    /// A stage was published (`resumed`: it had been published before this coordinator started).
    Started { platform: String, stage: u32, load: StageLoad, resumed: bool },
    /// A stage finished; `met` says whether it kept the sweep's target (when it has one).
    Finished { platform: String, stage: u32, result: StageResult, met: Option<bool> },
    /// A platform rests before its next stage (the sweep's `idle_seconds`).
    Resting { platform: String, stage: u32, seconds: f64 },
    /// A platform's sweep is over after `stages` stages.
    Over { platform: String, stages: u32 },
}

/// Where one platform's sweep stands, read from the run state.
struct Progress {
    /// Results of the finished stages, in order (their finish times from the results).
    history: Vec<StageResult>,
    /// The round after the finished ones, and its state.
    next: Option<(u32, BatchState)>,
}

async fn progress(store: &dyn RunStore, run_id: &str, platform: &str, sweep: &LoadSweep, results: &BTreeMap<BatchRef, Vec<u8>>) -> Result<Progress, EnqueueError> {
    let mut rounds: Vec<(u32, BatchState)> =
        store.batches_in(run_id, &BatchState::ALL).await?.into_iter().filter(|(b, _)| b.platform == platform).map(|(b, s)| (b.round, s.state)).collect();
    rounds.sort();
    let mut history = Vec::new();
    for (round, state) in rounds {
        let Next::Run(load) = sweep.next(&history) else {
            return Ok(Progress { history, next: None });
        };
        let offered = load.offered();
        let batch = BatchRef { platform: platform.to_owned(), round, index: 0 };
        let result = match state {
            BatchState::Done => results.get(&batch).and_then(|p| BatchMetrics::decode(p.as_slice()).ok()).and_then(|m| StageResult::of(&m)),
            _ => None,
        };
        match (state, result) {
            (BatchState::Done, Some(mut r)) => {
                r.offered = offered; // as decided; the worker reports the same
                history.push(r);
            }
            // Done without an inference phase (a platform without an endpoint), or failed outright.
            (BatchState::Done | BatchState::Failed, _) => history.push(StageResult::failed(offered)),
            (state, _) => return Ok(Progress { history, next: Some((round, state)) }),
        }
    }
    Ok(Progress { history, next: None })
}

/// Seconds a platform still rests before its next stage: `idle_seconds` from the last stage's end.
fn rest_left(sweep: &LoadSweep, history: &[StageResult]) -> f64 {
    match history.last() {
        Some(last) if sweep.idle_seconds > 0.0 && last.finished_unix_ms > 0 => {
            (last.finished_unix_ms as f64 / 1000.0 + sweep.idle_seconds - control::now_ms() as f64 / 1000.0).max(0.0)
        }
        _ => 0.0,
    }
}

/// Runs the sweep of `spec` on every platform, polling the run state every `poll`; returns the
/// results of each platform's stages.
#[allow(clippy::too_many_arguments)]
pub async fn run_sweep(
    broker: &dyn Broker,
    store: &dyn RunStore,
    ns: &Namespace,
    run_id: &str,
    spec: &RunSpec,
    sweep: &LoadSweep,
    manifest: &Manifest,
    options: &EnqueueOptions,
    poll: Duration,
    mut on_event: impl FnMut(SweepEvent),
) -> Result<BTreeMap<String, Vec<StageResult>>, EnqueueError> {
    let meta = enqueue::run_meta(run_id, spec, manifest);
    store.create_run(&meta, control::now_ms()).await?;
    broker.declare(ns, &spec.platforms, spec.delivery_limit).await?;
    let mut over: BTreeMap<String, Vec<StageResult>> = BTreeMap::new();
    let mut announced: BTreeMap<String, u32> = BTreeMap::new();
    let mut published: BTreeMap<String, u32> = BTreeMap::new();
    let mut resting: BTreeMap<String, u32> = BTreeMap::new();
    loop {
        if store.is_cancelled(run_id).await? {
            return Ok(over);
        }
        let results: BTreeMap<BatchRef, Vec<u8>> = store.results(run_id).await?.into_iter().collect();
        for platform in &spec.platforms {
            if over.contains_key(platform) {
                continue;
            }
            let p = progress(store, run_id, platform, sweep, &results).await?;
            // Say what finished since the last look.
            let seen = announced.entry(platform.clone()).or_insert(0);
            for (stage, result) in p.history.iter().enumerate().skip(*seen as usize) {
                let met = sweep.target.map(|t| t.met(result));
                on_event(SweepEvent::Finished { platform: platform.clone(), stage: stage as u32, result: *result, met });
            }
            *seen = p.history.len() as u32;
            match (p.next, sweep.next(&p.history)) {
                (Some((round, state)), Next::Run(_)) if state == BatchState::Pending && rest_left(sweep, &p.history) > 0.0 => {
                    // Rest first: the stage's first request then meets an endpoint idle that long.
                    if resting.insert(platform.clone(), round) != Some(round) {
                        on_event(SweepEvent::Resting { platform: platform.clone(), stage: round, seconds: rest_left(sweep, &p.history) });
                    }
                }
                (Some((round, state)), Next::Run(load)) if matches!(state, BatchState::Pending | BatchState::Enqueuing | BatchState::Cancelled) => {
                    let stage_options = EnqueueOptions { round: Some(round), platform: Some(platform.clone()), load: Some(load.to_proto(sweep)), ..options.clone() };
                    enqueue::start_run(broker, store, ns, run_id, spec, manifest, &stage_options).await?;
                    let resumed = state == BatchState::Enqueuing;
                    published.insert(platform.clone(), round);
                    on_event(SweepEvent::Started { platform: platform.clone(), stage: round, load, resumed });
                }
                (Some((round, _)), Next::Run(load)) => {
                    // Queued or running: wait for it (say so once, when a restarted coordinator finds it).
                    if published.get(platform) != Some(&round) {
                        published.insert(platform.clone(), round);
                        on_event(SweepEvent::Started { platform: platform.clone(), stage: round, load, resumed: true });
                    }
                }
                _ => {
                    // Over: the rounds it did not need are cancelled, so that the run completes.
                    let unused: Vec<BatchRef> = store
                        .batches_in(run_id, &[BatchState::Pending])
                        .await?
                        .into_iter()
                        .map(|(b, _)| b)
                        .filter(|b| &b.platform == platform)
                        .collect();
                    enqueue::cancel_batches(store, run_id, unused, &[BatchState::Pending]).await?;
                    on_event(SweepEvent::Over { platform: platform.clone(), stages: p.history.len() as u32 });
                    over.insert(platform.clone(), p.history);
                }
            }
        }
        if over.len() == spec.platforms.len() {
            return Ok(over);
        }
        tokio::time::sleep(poll).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use control::{MemoryBroker, MemoryStore};
    use proto::v1::{BatchJob, InferenceSetup, LoadMode, PhaseTiming};

    use crate::manifest::Entry;

    /// Plays the workers of a platform whose capacity is `capacity` requests/s: each queued stage
    /// job gets a p99 of 50 ms at or under it and 5 s above it; returns the rates it was offered.
    async fn serve(broker: &MemoryBroker, store: &MemoryStore, ns: &Namespace, platform: &str, capacity: f64, stages: usize) -> Vec<f64> {
        let mut offered = Vec::new();
        while offered.len() < stages {
            tokio::time::sleep(Duration::from_millis(5)).await;
            for payload in broker.drain(&ns.job_queue(platform)) {
                let job = BatchJob::decode(payload.as_slice()).unwrap();
                let load = job.load.unwrap();
                assert_eq!(load.mode, LoadMode::OpenLoop as i32);
                assert_eq!((load.min_requests, load.min_seconds, job.objects.len()), (50, 2.0, 4));
                let rate = load.rate_per_second;
                offered.push(rate);
                let mut h = proto::latency::new_histogram();
                proto::latency::record(&mut h, if rate <= capacity { 50_000 } else { 5_000_000 });
                let metrics = BatchMetrics {
                    inference: Some(PhaseTiming { requests: 100, latency_histogram: proto::latency::encode(&h), ..Default::default() }),
                    inference_setup: Some(InferenceSetup { mode: LoadMode::OpenLoop as i32, rate_per_second: rate, ..Default::default() }),
                    ..Default::default()
                };
                let batch = BatchRef { platform: platform.into(), round: job.round, index: 0 };
                store.put_result(&job.run_id, &batch, &metrics.encode_to_vec()).await.unwrap();
                let change = control::state::Change { batch, from: &[BatchState::Queued], to: BatchState::Done, owner: String::new(), bump_attempt: false };
                store.transition(&job.run_id, &[change], control::now_ms()).await.unwrap();
            }
        }
        offered
    }

    #[tokio::test]
    async fn each_platform_searches_on_its_own_results_and_a_restart_resumes_the_search() {
        let (broker, store, ns) = (MemoryBroker::new(), MemoryStore::new(), Namespace::new("t").unwrap());
        let text = "manifest = 'm.json'\nbatch_size = 4\n[[platform]]\nname = 'fast'\n[[platform]]\nname = 'slow'\n\
                    [load_sweep]\nmin_requests = 50\nmin_seconds = 2\nsearch = { slo_p99_ms = 100, min_rate = 5, max_rate = 100, precision = 0.1 }\n";
        let spec = RunSpec::parse(text, std::path::Path::new(".")).unwrap();
        let sweep = spec.load_sweep.clone().unwrap();
        let manifest = Manifest::new("t".into(), (0..8).map(|i| Entry { key: format!("{i}.jpg"), size: 1, sha256: format!("{i:064x}") }).collect()).unwrap();
        let poll = Duration::from_millis(2);
        let options = EnqueueOptions::default();
        // The slow platform's first stages, then the coordinator "dies" (is dropped mid-search).
        let first = run_sweep(&broker, &store, &ns, "s1", &spec, &sweep, &manifest, &options, poll, |_| {});
        tokio::select! {
            _ = first => panic!("the sweep cannot end while nobody serves the fast platform"),
            offered = serve(&broker, &store, &ns, "slow", 12.0, 2) => assert_eq!(offered, [5.0, 10.0]),
        }
        let mut events = Vec::new();
        let again = run_sweep(&broker, &store, &ns, "s1", &spec, &sweep, &manifest, &options, poll, |e| events.push(e));
        let all = async { tokio::join!(again, serve(&broker, &store, &ns, "fast", 60.0, 8), serve(&broker, &store, &ns, "slow", 12.0, 5)) };
        let (results, fast, slow) = tokio::time::timeout(Duration::from_secs(20), all).await.expect("the sweep ends within 20 s");
        let results = results.unwrap();
        // Fast: 5, 10, 20, 40, 80 (miss), 60 (met), 70 (miss), 65 (miss): 60 met, 65 missed, within 10%.
        assert_eq!(fast, [5.0, 10.0, 20.0, 40.0, 80.0, 60.0, 70.0, 65.0]);
        // Slow, resumed after 5 and 10 met: 20, 15, 12.5 (misses), 11.25 and 11.875 (met), 12.5 missed.
        assert_eq!(slow, [20.0, 15.0, 12.5, 11.25, 11.875]);
        assert_eq!(results["slow"].iter().map(|r| r.offered).collect::<Vec<_>>(), [5.0, 10.0, 20.0, 15.0, 12.5, 11.25, 11.875]);
        assert!(events.contains(&SweepEvent::Over { platform: "fast".into(), stages: 8 }));
        // The rounds a search did not need are cancelled, so the run is complete.
        let progress = store.progress("s1").await.unwrap().unwrap();
        assert!(progress.is_complete(), "{progress:?}");
    }
}

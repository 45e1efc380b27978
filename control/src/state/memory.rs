//! Run state in process memory, for the embedded run. Same semantics as [`super::RedisStore`].

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::{BatchRef, BatchState, BatchStatus, Change, Outcome, RunMeta, RunProgress, RunStore, StateError};

struct Run {
    meta: RunMeta,
    progress: RunProgress,
    batches: BTreeMap<BatchRef, BatchStatus>,
    results: BTreeMap<BatchRef, Vec<u8>>,
}

/// Run state held in a mutex-protected map.
#[derive(Default)]
pub struct MemoryStore {
    runs: Mutex<HashMap<String, Run>>,
    heartbeats: Mutex<HashMap<String, (Vec<u8>, Instant)>>,
}

impl MemoryStore {
    /// Returns an empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

fn count(progress: &mut RunProgress, platform: &str, state: BatchState, delta: i64) {
    let n = progress.platforms.entry(platform.to_owned()).or_default().entry(state).or_insert(0);
    *n = n.saturating_add_signed(delta);
}

#[async_trait]
impl RunStore for MemoryStore {
    async fn create_run(&self, meta: &RunMeta, now_ms: i64) -> Result<bool, StateError> {
        let mut runs = self.runs.lock().expect("state lock");
        if let Some(run) = runs.get(&meta.run_id) {
            return if run.meta.fingerprint == meta.fingerprint {
                Ok(false)
            } else {
                Err(StateError::PlanMismatch { run_id: meta.run_id.clone() })
            };
        }
        let mut progress = RunProgress {
            run_id: meta.run_id.clone(),
            total: meta.total(),
            created_unix_ms: now_ms,
            started_unix_ms: None,
            finished_unix_ms: None,
            cancelled: false,
            platforms: BTreeMap::new(),
        };
        let batches: BTreeMap<_, _> = meta.batches().map(|b| (b, BatchStatus::planned())).collect();
        for b in batches.keys() {
            count(&mut progress, &b.platform, BatchState::Pending, 1);
        }
        runs.insert(meta.run_id.clone(), Run { meta: meta.clone(), progress, batches, results: BTreeMap::new() });
        Ok(true)
    }

    async fn progress(&self, run_id: &str) -> Result<Option<RunProgress>, StateError> {
        Ok(self.runs.lock().expect("state lock").get(run_id).map(|r| r.progress.clone()))
    }

    async fn spec(&self, run_id: &str) -> Result<String, StateError> {
        let runs = self.runs.lock().expect("state lock");
        runs.get(run_id).map(|r| r.meta.spec.clone()).ok_or_else(|| StateError::UnknownRun(run_id.to_owned()))
    }

    async fn transition(&self, run_id: &str, changes: &[Change], now_ms: i64) -> Result<Vec<Outcome>, StateError> {
        let mut runs = self.runs.lock().expect("state lock");
        let run = runs.get_mut(run_id).ok_or_else(|| StateError::UnknownRun(run_id.to_owned()))?;
        let mut outcomes = Vec::with_capacity(changes.len());
        for change in changes {
            let Some(status) = run.batches.get_mut(&change.batch) else {
                outcomes.push(Outcome::Missing);
                continue;
            };
            let before = status.clone();
            if !change.from.contains(&status.state) {
                outcomes.push(Outcome::Refused(before));
                continue;
            }
            status.state = change.to;
            status.owner = change.owner.clone();
            status.attempt += u32::from(change.bump_attempt);
            count(&mut run.progress, &change.batch.platform, before.state, -1);
            count(&mut run.progress, &change.batch.platform, change.to, 1);
            if change.to == BatchState::Running {
                run.progress.started_unix_ms.get_or_insert(now_ms);
            }
            outcomes.push(Outcome::Applied(before));
        }
        run.progress.finished_unix_ms = if run.progress.is_complete() {
            Some(run.progress.finished_unix_ms.unwrap_or(now_ms))
        } else {
            None
        };
        Ok(outcomes)
    }

    async fn batches_in(&self, run_id: &str, states: &[BatchState]) -> Result<Vec<(BatchRef, BatchStatus)>, StateError> {
        let runs = self.runs.lock().expect("state lock");
        let run = runs.get(run_id).ok_or_else(|| StateError::UnknownRun(run_id.to_owned()))?;
        Ok(run.batches.iter().filter(|(_, s)| states.contains(&s.state)).map(|(b, s)| (b.clone(), s.clone())).collect())
    }

    async fn set_cancelled(&self, run_id: &str, cancelled: bool) -> Result<(), StateError> {
        let mut runs = self.runs.lock().expect("state lock");
        let run = runs.get_mut(run_id).ok_or_else(|| StateError::UnknownRun(run_id.to_owned()))?;
        run.progress.cancelled = cancelled;
        Ok(())
    }

    async fn is_cancelled(&self, run_id: &str) -> Result<bool, StateError> {
        Ok(self.runs.lock().expect("state lock").get(run_id).is_some_and(|r| r.progress.cancelled))
    }

    async fn heartbeat(&self, worker_id: &str, payload: &[u8], ttl_ms: u64) -> Result<(), StateError> {
        let expires = Instant::now() + Duration::from_millis(ttl_ms);
        self.heartbeats.lock().expect("state lock").insert(worker_id.to_owned(), (payload.to_vec(), expires));
        Ok(())
    }

    async fn heartbeats(&self) -> Result<Vec<Vec<u8>>, StateError> {
        let mut beats = self.heartbeats.lock().expect("state lock");
        let now = Instant::now();
        beats.retain(|_, (_, expires)| *expires > now);
        Ok(beats.values().map(|(p, _)| p.clone()).collect())
    }

    async fn clock_us(&self) -> Result<i64, StateError> {
        Ok(crate::now_us())
    }

    async fn put_result(&self, run_id: &str, batch: &BatchRef, payload: &[u8]) -> Result<(), StateError> {
        let mut runs = self.runs.lock().expect("state lock");
        let run = runs.get_mut(run_id).ok_or_else(|| StateError::UnknownRun(run_id.to_owned()))?;
        run.results.insert(batch.clone(), payload.to_vec());
        Ok(())
    }

    async fn results(&self, run_id: &str) -> Result<Vec<(BatchRef, Vec<u8>)>, StateError> {
        let runs = self.runs.lock().expect("state lock");
        let run = runs.get(run_id).ok_or_else(|| StateError::UnknownRun(run_id.to_owned()))?;
        Ok(run.results.iter().map(|(b, p)| (b.clone(), p.clone())).collect())
    }
}

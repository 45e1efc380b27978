//! The coordinator's live metrics: a run's batches by platform and state, live and busy workers and
//! their errors, and the depth of each platform's job queue, read every few seconds from the run
//! state and the broker into a Prometheus registry that `--metrics-addr` serves.

use std::sync::Arc;
use std::time::Duration;

use control::state::BatchState;
use service::telemetry::Registry;
use control::{AmqpBroker, Broker, Namespace, RunStore};

use crate::status::workers_by_platform;

const STATES: [BatchState; 7] =
    [BatchState::Pending, BatchState::Enqueuing, BatchState::Queued, BatchState::Running, BatchState::Done, BatchState::Failed, BatchState::Cancelled];

/// Records one reading of `run_id` into `registry`. A store or broker that cannot answer leaves the
/// last values and counts a failed reading. Returns false when the broker failed to answer.
pub async fn record(registry: &Registry, store: &dyn RunStore, broker: Option<&dyn Broker>, ns: &Namespace, run_id: &str) -> bool {
    let mut broker_ok = true;
    let progress = match store.progress(run_id).await {
        Ok(Some(p)) => p,
        Ok(None) => return true,
        Err(e) => {
            tracing::warn!(error = %e, "run state unreadable for metrics");
            registry.add("cloudbench_coordinator_read_errors_total", "Readings of the run state or broker that failed.", &[("source", "run_state")], 1.0);
            return true;
        }
    };
    for (platform, counts) in &progress.platforms {
        for state in STATES {
            let n = counts.get(&state).copied().unwrap_or(0);
            registry.set("cloudbench_coordinator_batches", "Batches of the run, by platform and state.", &[("platform", platform), ("state", state.as_str())], n as f64);
        }
        if let Some(broker) = broker.filter(|_| broker_ok) {
            match broker.depth(&ns.job_queue(platform)).await {
                Ok(depth) => registry.set("cloudbench_coordinator_queue_depth", "Jobs waiting in each platform's queue.", &[("platform", platform)], depth as f64),
                Err(e) => {
                    tracing::warn!(error = %e, "queue depth unreadable for metrics");
                    registry.add("cloudbench_coordinator_read_errors_total", "Readings of the run state or broker that failed.", &[("source", "broker")], 1.0);
                    broker_ok = false;
                }
            }
        }
    }
    registry.set("cloudbench_coordinator_run_complete", "1 once every batch of the run is over.", &[], if progress.is_complete() { 1.0 } else { 0.0 });
    if let Ok(beats) = store.heartbeats().await {
        let workers = workers_by_platform(&beats);
        for platform in progress.platforms.keys() {
            let w = workers.get(platform).cloned().unwrap_or_default();
            let labels = |state| [("platform", platform.as_str()), ("state", state)];
            registry.set("cloudbench_coordinator_workers", "Workers with a live heartbeat, by platform, and how many are busy.", &labels("live"), f64::from(w.live));
            registry.set("cloudbench_coordinator_workers", "Workers with a live heartbeat, by platform, and how many are busy.", &labels("busy"), f64::from(w.busy));
            registry.set("cloudbench_coordinator_worker_errors", "Errors the live workers of each platform reported so far.", &[("platform", platform)], w.errors as f64);
        }
    }
    broker_ok
}

/// Records `run_id` every `every` until the task is dropped, with a broker connection of its own
/// (opened again when lost).
pub async fn watch(registry: Arc<Registry>, store: Arc<dyn RunStore>, amqp_url: String, ns: Namespace, run_id: String, every: Duration) {
    let mut broker: Option<AmqpBroker> = None;
    loop {
        if broker.is_none() {
            broker = AmqpBroker::connect(&amqp_url).await.ok();
        }
        if !record(&registry, store.as_ref(), broker.as_ref().map(|b| b as &dyn Broker), &ns, &run_id).await {
            broker = None;
        }
        tokio::time::sleep(every).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use control::state::{Change, RunMeta};
    use control::{MemoryBroker, MemoryStore};

    #[tokio::test]
    async fn a_reading_sets_every_state_of_every_platform() {
        let store = MemoryStore::default();
        let meta = RunMeta {
            run_id: "r".into(),
            fingerprint: "f".into(),
            platforms: vec!["aws".into(), "azure".into()],
            rounds: 1,
            batches_per_round: 2,
            spec: String::new(),
        };
        store.create_run(&meta, 0).await.unwrap();
        let first = meta.batches().next().unwrap();
        let change = Change { batch: first, from: &[BatchState::Pending], to: BatchState::Queued, owner: String::new(), bump_attempt: true };
        store.transition("r", &[change], 1).await.unwrap();
        let ns = Namespace::new("observe-test").unwrap();
        let broker = MemoryBroker::default();
        broker.declare(&ns, &["aws".into(), "azure".into()], 3).await.unwrap();
        let registry = Registry::default();
        assert!(record(&registry, &store, Some(&broker), &ns, "r").await);
        let text = registry.render();
        assert!(text.contains("cloudbench_coordinator_batches{platform=\"aws\",state=\"queued\"} 1"), "{text}");
        assert!(text.contains("cloudbench_coordinator_batches{platform=\"aws\",state=\"pending\"} 1"), "{text}");
        assert!(text.contains("cloudbench_coordinator_batches{platform=\"azure\",state=\"pending\"} 2"), "{text}");
        assert!(text.contains("cloudbench_coordinator_batches{platform=\"azure\",state=\"done\"} 0"), "{text}");
        assert!(text.contains("cloudbench_coordinator_queue_depth{platform=\"aws\"} 0"), "{text}");
        assert!(text.contains("cloudbench_coordinator_workers{platform=\"aws\",state=\"live\"} 0"), "{text}");
        assert!(text.contains("cloudbench_coordinator_run_complete 0"), "{text}");
    }
}

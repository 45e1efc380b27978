//! `analyzer collect`: moves `BatchMetrics` from the metrics queue into the store.
//!
//! Each message is validated, appended (deduplicated by job key, on disk before the call returns) and
//! only then acknowledged. A message that does not decode is dead-lettered; a redelivered or duplicated
//! message is acknowledged without being stored twice.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use control::consume::{Connector, Handler, consume};
use service::telemetry::Registry;
use control::{Broker, BrokerError, Delivery, Namespace};
use tokio::sync::watch;

use crate::store::MetricsStore;

/// What the collector did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CollectStats {
    pub stored: u64,
    pub duplicates: u64,
    pub malformed: u64,
    pub reconnects: u64,
}

struct Collector {
    store: Arc<Mutex<MetricsStore>>,
    stats: CollectStats,
    stop: watch::Receiver<bool>,
    telemetry: Arc<Registry>,
    queue: String,
    /// When the metrics queue's depth was last read for the live metrics.
    depth_read: Option<std::time::Instant>,
}

impl Collector {
    fn count(&self, outcome: &str) {
        self.telemetry.add("cloudbench_collector_messages_total", "Metrics messages handled, by outcome.", &[("outcome", outcome)], 1.0);
    }
}

#[async_trait]
impl Handler for Collector {
    async fn handle(&mut self, broker: &dyn Broker, delivery: Delivery) -> Result<(), BrokerError> {
        if self.depth_read.is_none_or(|t| t.elapsed() >= std::time::Duration::from_secs(5)) {
            self.depth_read = Some(std::time::Instant::now());
            if let Ok(depth) = broker.depth(&self.queue).await {
                self.telemetry.set("cloudbench_collector_queue_depth", "Messages waiting in the metrics queue.", &[], depth as f64);
            }
        }
        let key = match proto::validate::batch_metrics(&delivery.payload) {
            Ok((key, _)) => key,
            Err(e) => {
                tracing::error!(message_id = ?delivery.message_id, error = %e, "malformed metrics dead-lettered");
                self.stats.malformed += 1;
                self.count("malformed");
                return delivery.dead_letter().await;
            }
        };
        // Stored, or found stored already, before it is acknowledged. While the store cannot write (a
        // full or read-only disk) the message is held, unacknowledged, and the append retried with
        // backoff: requeueing it would spend the queue's delivery limit and dead-letter metrics
        // that only wait for disk space.
        let mut attempt = 0u32;
        let appended = loop {
            let store = self.store.clone();
            let payload = delivery.payload.clone();
            let append_key = key.clone();
            let appended = tokio::task::spawn_blocking(move || store.lock().expect("store lock").append(&append_key, &payload))
                .await
                .expect("append does not panic");
            match appended {
                Ok(new) => break new,
                Err(e) => {
                    if attempt == 0 || attempt.is_multiple_of(10) {
                        tracing::error!(job = %key, error = %e, "cannot store metrics; holding them unacknowledged and retrying");
                    }
                    self.count("store_error");
                    self.telemetry.set("cloudbench_collector_store_failing", "1 while the metrics store cannot write.", &[], 1.0);
                    attempt += 1;
                    if !control::consume::pause(control::consume::backoff(attempt), &self.stop).await {
                        // Shutting down: the message goes back to the queue for the next collector.
                        return delivery.requeue().await;
                    }
                }
            }
        };
        if attempt > 0 {
            tracing::warn!(job = %key, attempts = attempt + 1, "metrics store writing again");
            self.telemetry.set("cloudbench_collector_store_failing", "1 while the metrics store cannot write.", &[], 0.0);
        }
        if appended {
            self.stats.stored += 1;
            self.count("stored");
            tracing::debug!(job = %key, "metrics stored");
        } else {
            self.stats.duplicates += 1;
            self.count("duplicate");
            tracing::info!(job = %key, "duplicate metrics dropped");
        }
        delivery.ack().await
    }
}

/// Collects from the namespace's metrics queue into `store` until `stop`, counting what it does in
/// `telemetry`.
pub async fn collect(
    connector: &Connector,
    ns: &Namespace,
    store: Arc<Mutex<MetricsStore>>,
    stop: watch::Receiver<bool>,
    telemetry: Arc<Registry>,
) -> CollectStats {
    let mut collector =
        Collector { store, stats: CollectStats::default(), stop: stop.clone(), telemetry, queue: ns.metrics_queue(), depth_read: None };
    let reconnects = consume(connector, &ns.metrics_queue(), 64, &stop, &mut collector).await;
    CollectStats { reconnects, ..collector.stats }
}

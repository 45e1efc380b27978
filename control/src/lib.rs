//! The control plane of a run: where jobs and metrics travel and where the run's state is kept.
//! (What every process shares besides, logging, signals and `/metrics`, is the `service` crate's.)
//!
//! - [`broker`]: the [`Broker`] trait (declare the topology, publish with confirms, consume with
//!   acknowledgements) with `AmqpBroker` for RabbitMQ (feature `rabbitmq`) and [`MemoryBroker`] for
//!   the embedded run.
//! - [`state`]: the [`RunStore`] trait (per-batch state, progress counts, worker heartbeats) with
//!   `RedisStore` (feature `redis`) and [`MemoryStore`]; the transition rules themselves are pure, in [`state::rules`].
//! - [`sweep`]: load sweeps and the search for the highest rate meeting a target (pure).
//! - [`conformance`]: what every [`Broker`] and every [`RunStore`] must do, checked against each.
//! - [`consume`]: the reconnecting consumer loop shared by workers and the collector.
//! - [`dead`]: jobs the broker dead-lettered at their delivery limit, failed in the run state.
//! - [`Namespace`] names every queue and key, so concurrent deployments and tests never collide.
//! - [`redact`] strips credentials from URLs before they reach a log line.

pub mod broker;
pub mod conformance;
pub mod consume;
pub mod dead;
mod redact;
pub mod state;
pub mod sweep;

#[cfg(feature = "rabbitmq")]
pub use broker::AmqpBroker;
pub use broker::{Broker, BrokerError, Delivery, MemoryBroker, Outgoing, Subscription};
pub use redact::{SecretUrl, redact};
#[cfg(feature = "redis")]
pub use state::RedisStore;
pub use state::{MemoryStore, RunStore, StateError};

/// Returns the wall-clock time in Unix microseconds.
pub fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

/// Returns the wall-clock time in Unix milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Prefix of every queue, exchange and Redis key of one deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Namespace(String);

impl Namespace {
    /// Default namespace of a deployment.
    pub const DEFAULT: &'static str = "cloudbench";

    /// Checks and wraps a namespace name.
    pub fn new(name: &str) -> Result<Self, proto::NameError> {
        proto::check_name("namespace", name)?;
        Ok(Self(name.to_owned()))
    }

    /// The namespace's name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Durable quorum queue carrying one platform's jobs.
    pub fn job_queue(&self, platform: &str) -> String {
        format!("{}.jobs.{platform}", self.0)
    }

    /// Durable quorum queue carrying every worker's metrics to the collector.
    pub fn metrics_queue(&self) -> String {
        format!("{}.metrics", self.0)
    }

    /// Exchange that receives dead-lettered messages of every queue.
    pub fn dead_letter_exchange(&self) -> String {
        format!("{}.dlx", self.0)
    }

    /// Queue where dead-lettered messages wait for a person.
    pub fn dead_letter_queue(&self) -> String {
        format!("{}.dead", self.0)
    }

    /// Prefix of every Redis key.
    pub fn key(&self, suffix: &str) -> String {
        format!("{}:{suffix}", self.0)
    }
}

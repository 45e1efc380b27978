//! The wire contract of cloudbench: protobuf messages exchanged between coordinator, workers and the
//! analyzer, plus the hand-written helpers every side needs to speak it the same way.
//!
//! - [`v1`] holds the generated messages (`cloudbench/v1/messages.proto`, which documents the
//!   evolution rules).
//! - [`JobKey`] is the canonical identity of a batch job, used for deduplication everywhere.
//! - [`latency`] serialises per-request latency histograms so that they merge exactly.
//! - [`validate`] checks what a decoded message must satisfy before domain code sees it.

pub mod latency;
mod names;
pub mod validate;

pub use names::{JobKey, NameError, check_name};

/// Generated messages of package `cloudbench.v1`.
pub mod v1 {
    include!(concat!(env!("OUT_DIR"), "/cloudbench.v1.rs"));
}

/// Content type set on every message this system publishes.
pub const CONTENT_TYPE: &str = "application/x-protobuf";
/// AMQP `type` property of a [`v1::BatchJob`].
pub const BATCH_JOB_TYPE: &str = "cloudbench.v1.BatchJob";
/// AMQP `type` property of a [`v1::BatchMetrics`].
pub const BATCH_METRICS_TYPE: &str = "cloudbench.v1.BatchMetrics";

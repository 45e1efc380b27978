//! The worker: runs next to a platform, takes that platform's batch jobs and measures them.
//!
//! - [`config`] merges flags, environment and a TOML file into a validated [`config::WorkerConfig`].
//! - [`batch`] holds what a batch's phases measure, shared by [`phases`] and [`inference`].
//! - [`phases`] runs a batch's timed phases against the platform's storage.
//! - [`inference`] sends the downloaded images to the platform's model endpoint.
//! - [`metrics`] turns the measurements into a `BatchMetrics` message (pure).
//! - [`settle`] decides how a delivery is settled from what happened to it (pure): acknowledge, drop,
//!   return with backoff, or dead-letter.
//! - [`runner`] is the loop around them: claim, run, publish, record, settle; reconnect; drain.

pub mod batch;
pub mod config;
pub mod crash;
pub mod inference;
pub mod metrics;
pub mod phases;
pub mod runner;
pub mod settle;

/// Version of this worker, recorded with every metric.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// Git commit the worker was built from.
pub const GIT_COMMIT: &str = env!("CLOUDBENCH_GIT_COMMIT");

/// Processors this process may run on (its CPU affinity or cgroup quota, as the standard library
/// reads them), recorded with every batch so that a report can tell a saturated client.
pub fn cpus() -> u32 {
    std::thread::available_parallelism().map_or(1, |n| n.get() as u32)
}

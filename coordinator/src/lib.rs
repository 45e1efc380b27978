//! The coordinator: turns a dataset and a run spec into batch jobs and follows the run.
//!
//! - [`manifest`] and [`synth`] describe datasets (a folder of images, or generated images shaped like
//!   COCO's); [`spec`] reads run specs; [`plan`] splits a manifest into batches (pure).
//! - [`enqueue`] records the run in the run-state store and publishes its jobs with confirms, so that
//!   starting a run again resumes it without publishing a batch twice.
//! - [`seed`] copies a dataset into a bucket or container, builds manifests from stores, and removes
//!   what a run's workers left behind.
//! - [`schedule`] repeats a run's rounds on a schedule for long-term stability runs.
//! - [`stages`] runs a scaling experiment stage by stage, each at its number of workers.
//! - [`sweep`] runs a load sweep: per platform, stage after stage at the load its results call for.
//! - [`status`] renders progress.
//!
//! The binary (`main.rs`) wires these to RabbitMQ and Redis; the embedded run wires them to the
//! in-process broker and store.

pub mod enqueue;
pub mod manifest;
#[cfg(feature = "cloud")]
pub mod observe;
pub mod plan;
pub mod schedule;
pub mod seed;
pub mod spec;
pub mod stages;
pub mod sweep;
pub mod status;
pub mod synth;

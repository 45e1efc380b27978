//! The model endpoint: an HTTP server hosting the detector under the SageMaker and Azure App Service
//! contracts, and the clients (SageMaker runtime, HTTP, in-process) the worker's inference phase uses.

pub mod api;
pub mod batcher;
pub mod client;
pub mod metrics;
pub mod pass;
pub mod server;
pub mod tls;

pub use batcher::{BatchConfig, Batcher};
pub use client::{Invoked, Invoker, TargetConfig};
pub use server::{ServerConfig, app};

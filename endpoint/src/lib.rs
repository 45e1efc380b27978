//! The model endpoint: an HTTP server hosting the detector under the SageMaker and Azure App Service
//! contracts, and the clients (SageMaker runtime, HTTP, in-process) the worker's inference phase uses.
//! Features (all on by default): `server` (the `endpoint` binary), `http` and `sagemaker` (the
//! remote clients); without them only the in-process model is left, as the embedded run uses it.

pub mod api;
pub mod batcher;
pub mod client;
pub mod metrics;
pub mod pass;
#[cfg(feature = "server")]
pub mod server;
#[cfg(feature = "server")]
pub mod tls;

pub use batcher::{BatchConfig, Batcher};
pub use client::{Invoked, Invoker, TargetConfig};
#[cfg(feature = "server")]
pub use server::{ServerConfig, app};

//! What every process of the system does the same way, apart from what it does:
//!
//! - [`run_main`]: logging to standard error (text or JSON lines), a tokio runtime, one clear line
//!   and exit status 1 on error; [`shutdown_signal`] for SIGTERM and Ctrl-C; [`progress_bar`] for
//!   terminals only.
//! - [`telemetry`]: the process's live metrics in the Prometheus text format, and (feature
//!   `metrics-server`) the `/metrics` server, optionally behind a bearer token.
//!
//! The control plane (queues, run state) is the `control` crate's; nothing here knows of it.

mod process;
pub mod telemetry;

pub use process::{QUIET_SDKS, progress_bar, run_main, shutdown_signal};

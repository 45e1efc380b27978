//! The analyzer: collects batch metrics into a durable store and turns them into results.
//!
//! - [`store`]: append-only per-run logs, deduplicated by job key, durable before acknowledgement.
//! - [`collect`]: the consumer that moves metrics from the queue into the store.
//! - [`civil`]: Unix times as UTC dates and back (pure).
//! - [`batch`]: a batch's wire metrics converted once into the type the analyzer reads (histograms
//!   decoded, load mode typed).
//! - [`rows`]: per-batch rows with the paper's derived measures (pure).
//! - [`history`]: every run of a store as series of run medians, with dated changes (pure).
//! - [`merge`]: the stores of several collectors into one, refusing conflicting records.
//! - [`export`]: rows to CSV or JSON (pure).
//! - [`summary`]: a per-platform Markdown summary of the rows (pure).
//! - [`compare`]: runs against a baseline, with significance and a practical threshold (pure).
//! - [`check`]: service-level gates on a run (`analyzer check`, pure).
//! - [`stats`]: descriptives, rank tests, effect sizes, bootstrap intervals and change points (pure).

pub mod batch;
pub mod check;
pub mod civil;
pub mod compare;
pub mod collect;
pub mod export;
pub mod history;
pub mod merge;
pub mod rows;
pub mod stats;
pub mod report;
pub mod store;
pub mod summary;

use rows::BatchRow;
use store::{MetricsStore, StoreError};

/// Reads a run's metrics from the store as sorted rows.
pub fn run_rows(store: &MetricsStore, run_id: &str) -> Result<Vec<BatchRow>, StoreError> {
    let mut rows: Vec<BatchRow> = store.read(run_id)?.iter().map(BatchRow::from_metrics).collect();
    rows::sort(&mut rows);
    Ok(rows)
}

//! `analyzer report`: the paper's tables and figures from a run's metrics, and what goes beyond them
//! (effect sizes, pairwise tests, change points, merged latency, availability, costs, requirements).
//!
//! - [`config`]: the editable price catalog and requirement weights (TOML, defaults embedded).
//! - [`build`]: metrics → [`model::Report`], every number (pure): the wire metrics converted once
//!   into [`crate::batch::Batch`]es, then assembled from `metrics` (per-metric statistics and
//!   tests), `scaling`, `service` (latency, availability, cost), `scoring` (the paper's Tables 8
//!   and 9) and `rounds` (trends across rounds); [`validity`] checks whether the
//!   numbers can be trusted, per platform (VALID / INVALID); [`capacity`] finds the highest load
//!   each platform sustains under a latency target and what it costs.
//! - [`content`] lays the report out as [`document`] blocks, rendered to Markdown or HTML;
//!   [`charts`] draws the figures as SVG.
//!
//! [`render`] returns the three files' bytes; the caller writes them.

pub mod build;
pub mod capacity;
pub mod charts;
pub mod config;
pub mod content;
pub mod document;
pub(crate) mod metrics;
pub mod model;
mod rounds;
mod scaling;
mod scoring;
mod service;
pub mod validity;

pub use build::{Options, build, build_steps, build_with_progress};

/// The report's three renderings: `report.md`, `report.html`, `report.json`.
pub struct Rendered {
    pub markdown: String,
    pub html: String,
    pub json: String,
}

/// Renders a report in every format.
pub fn render(report: &model::Report) -> Rendered {
    Rendered {
        markdown: document::markdown(&content::blocks(report, false)),
        html: document::html(&content::title(report), &content::blocks(report, true)),
        json: serde_json::to_string_pretty(report).expect("the report serialises") + "\n",
    }
}

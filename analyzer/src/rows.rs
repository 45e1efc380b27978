//! Per-batch rows derived from `BatchMetrics`: the paper's measures and ours, with their units.
//!
//! Times are in seconds; sizes in MiB (2^20 bytes; the paper writes "MB"); normalised times in seconds
//! per MiB; throughput in MiB/s is batch size / (download + inference time), the paper's definition
//! (section 3.2). A storage-only platform has no inference time, so its throughput is over download.

use proto::v1::{BatchMetrics, PhaseTiming};
use serde::Serialize;

const MIB: f64 = 1024.0 * 1024.0;

/// One batch, flat, ready for CSV or statistics.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BatchRow {
    pub job_key: String,
    pub run_id: String,
    pub round: u32,
    pub platform: String,
    pub batch_index: u32,
    pub images: u32,
    pub mib: f64,
    pub source_s: f64,
    pub upload_s: f64,
    pub download_s: f64,
    /// Absent for storage-only platforms.
    pub inference_s: Option<f64>,
    pub upload_s_per_mib: f64,
    pub download_s_per_mib: f64,
    pub inference_s_per_mib: Option<f64>,
    pub throughput_mib_s: f64,
    pub upload_p50_ms: f64,
    pub upload_p99_ms: f64,
    pub download_p50_ms: f64,
    pub download_p99_ms: f64,
    /// Per-request inference latency; for an open-loop run, from each request's intended start.
    pub inference_p50_ms: Option<f64>,
    pub inference_p99_ms: Option<f64>,
    /// How the inference load was offered: "closed" (N in flight), "open" (fixed rate), or empty.
    pub inference_mode: String,
    /// Requests in flight (closed) or started per second (open).
    pub inference_load: Option<f64>,
    /// The endpoint, as the worker described it ("sagemaker endpoint NAME", "http URL", ...).
    pub inference_target: String,
    pub errors: u64,
    /// Requests retried after throttling, timeouts or server errors (they succeeded or are in errors).
    pub retries: u64,
    pub worker_id: String,
    pub host: String,
    pub provider: String,
    pub region: String,
    pub instance_type: String,
    pub git_commit: String,
    pub model_hash: String,
    pub attempt: u32,
    pub previous_deliveries: u32,
    pub started_unix_ns: i64,
    pub finished_unix_ns: i64,
}

fn seconds(phase: &Option<PhaseTiming>) -> Option<f64> {
    phase.as_ref().map(|p| p.duration_ns as f64 / 1e9)
}

/// p50 and p99 of a phase's request latency in ms (0 without requests), decoding the histogram once.
fn p50_p99_ms(phase: &Option<PhaseTiming>) -> (f64, f64) {
    phase
        .as_ref()
        .and_then(|p| proto::latency::decode(&p.latency_histogram).ok())
        .filter(|h| !h.is_empty())
        .map_or((0.0, 0.0), |h| (h.value_at_quantile(0.5) as f64 / 1000.0, h.value_at_quantile(0.99) as f64 / 1000.0))
}

impl BatchRow {
    /// Derives the row of one batch.
    pub fn from_metrics(m: &BatchMetrics) -> Self {
        let mib = m.bytes as f64 / MIB;
        let per_mib = |s: f64| if mib > 0.0 { s / mib } else { f64::NAN };
        let upload_s = seconds(&m.upload).unwrap_or(0.0);
        let download_s = seconds(&m.download).unwrap_or(0.0);
        let inference_s = seconds(&m.inference);
        let serving = download_s + inference_s.unwrap_or(0.0);
        let worker = m.worker.clone().unwrap_or_default();
        let (upload_p50_ms, upload_p99_ms) = p50_p99_ms(&m.upload);
        let (download_p50_ms, download_p99_ms) = p50_p99_ms(&m.download);
        let versions = m.versions.clone().unwrap_or_default();
        let inference_p = m.inference.as_ref().map(|_| p50_p99_ms(&m.inference));
        let setup = m.inference_setup.clone().unwrap_or_default();
        let (inference_mode, inference_load) = match proto::v1::LoadMode::try_from(setup.mode) {
            Ok(proto::v1::LoadMode::ClosedLoop) => ("closed", Some(f64::from(setup.concurrency))),
            Ok(proto::v1::LoadMode::OpenLoop) => ("open", Some(setup.rate_per_second)),
            _ => ("", None),
        };
        Self {
            job_key: m.job_key.clone(),
            run_id: m.run_id.clone(),
            round: m.round,
            platform: m.platform.clone(),
            batch_index: m.batch_index,
            images: m.images,
            mib,
            source_s: seconds(&m.source).unwrap_or(0.0),
            upload_s,
            download_s,
            inference_s,
            upload_s_per_mib: per_mib(upload_s),
            download_s_per_mib: per_mib(download_s),
            inference_s_per_mib: inference_s.map(per_mib),
            throughput_mib_s: if serving > 0.0 { mib / serving } else { f64::NAN },
            upload_p50_ms,
            upload_p99_ms,
            download_p50_ms,
            download_p99_ms,
            inference_p50_ms: inference_p.map(|p| p.0),
            inference_p99_ms: inference_p.map(|p| p.1),
            inference_mode: inference_mode.to_owned(),
            inference_load,
            inference_target: setup.target,
            errors: m.errors.iter().map(|c| c.count).sum(),
            retries: m.retries.iter().map(|c| c.count).sum(),
            worker_id: worker.worker_id,
            host: worker.host,
            provider: worker.provider,
            region: worker.region,
            instance_type: worker.instance_type,
            git_commit: versions.git_commit,
            model_hash: versions.model_hash,
            attempt: m.attempt,
            previous_deliveries: m.previous_deliveries,
            started_unix_ns: m.started_unix_ns,
            finished_unix_ns: m.finished_unix_ns,
        }
    }
}

/// Sorts rows by platform, round and batch, the order of the paper's per-batch figures.
pub fn sort(rows: &mut [BatchRow]) {
    rows.sort_by(|a, b| (&a.platform, a.round, a.batch_index).cmp(&(&b.platform, b.round, b.batch_index)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalised_times_and_throughput_follow_the_papers_definitions() {
        let timing = |ns| Some(PhaseTiming { duration_ns: ns, ..Default::default() });
        let m = BatchMetrics {
            bytes: 4 * 1024 * 1024,
            upload: timing(2_000_000_000),
            download: timing(1_000_000_000),
            inference: timing(3_000_000_000),
            ..Default::default()
        };
        let row = BatchRow::from_metrics(&m);
        assert_eq!((row.mib, row.upload_s_per_mib, row.download_s_per_mib), (4.0, 0.5, 0.25));
        assert_eq!(row.inference_s_per_mib, Some(0.75));
        assert_eq!(row.throughput_mib_s, 1.0, "4 MiB over 1 s download + 3 s inference");
        let storage_only = BatchMetrics { inference: None, ..m };
        assert_eq!(BatchRow::from_metrics(&storage_only).throughput_mib_s, 4.0);
    }
}

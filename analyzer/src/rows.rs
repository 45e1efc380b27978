//! Per-batch rows derived from a [`Batch`]: the paper's measures and ours, with their units.
//!
//! Times are in seconds; sizes in MiB (2^20 bytes; the paper writes "MB"); normalised times in seconds
//! per MiB; throughput in MiB/s is batch size / (download + inference time), the paper's definition
//! (section 3.2). A storage-only platform has no inference time, so its throughput is over download.

use proto::v1::BatchMetrics;
use serde::Serialize;

use crate::batch::{Batch, Latencies, Mode, Phase};

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
    /// The batch's bytes as planned (the manifest's sizes); `mib` is this over 2^20.
    pub bytes: u64,
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
    pub upload_p90_ms: f64,
    pub upload_p99_ms: f64,
    pub download_p50_ms: f64,
    pub download_p90_ms: f64,
    pub download_p99_ms: f64,
    /// Requests of the inference phase (an image retried is one request) and those that failed.
    pub inference_requests: Option<u64>,
    pub inference_failed: Option<u64>,
    /// Per-request inference latency; for an open-loop run, from each request's intended start.
    pub inference_p50_ms: Option<f64>,
    pub inference_p90_ms: Option<f64>,
    pub inference_p99_ms: Option<f64>,
    /// Open loop: the 99th percentile of how late requests started against their schedule.
    pub inference_start_lag_p99_ms: Option<f64>,
    /// Latencies above the histograms' limit (one hour), recorded at the limit, over all phases.
    pub latency_clamped: u64,
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
    /// Processors the worker could use (0: not reported).
    pub cpus: u32,
    /// The highest share of the worker's processors its process kept busy in a timed phase (upload,
    /// download, inference): CPU time / (wall time × cpus). Near 1, the client was measured.
    pub client_cpu_share: Option<f64>,
    /// The worker's clock minus the run store's, at its latest heartbeat before the batch.
    pub clock_offset_ms: Option<f64>,
    pub git_commit: String,
    pub model_hash: String,
    pub attempt: u32,
    pub previous_deliveries: u32,
    pub started_unix_ns: i64,
    pub finished_unix_ns: i64,
}

fn seconds(phase: &Option<Phase>) -> Option<f64> {
    phase.as_ref().map(|p| p.duration_ns as f64 / 1e9)
}

/// p50, p90 and p99 of a histogram in ms (0 when it is empty).
fn quantiles_ms(latencies: &Latencies) -> [f64; 3] {
    if latencies.is_empty() {
        return [0.0; 3];
    }
    let h = latencies.histogram();
    [0.5, 0.9, 0.99].map(|q| h.value_at_quantile(q) as f64 / 1000.0)
}

/// p50, p90 and p99 of a phase's request latency in ms (0 without requests).
fn phase_quantiles_ms(phase: &Option<Phase>) -> [f64; 3] {
    phase.as_ref().map_or([0.0; 3], |p| quantiles_ms(&p.latency))
}

/// CPU time over wall time × processors of a phase, when both were reported.
fn cpu_share(phase: &Option<Phase>, cpus: u32) -> Option<f64> {
    let p = phase.as_ref()?;
    (p.cpu_ns > 0 && p.duration_ns > 0 && cpus > 0).then(|| p.cpu_ns as f64 / (p.duration_ns as f64 * f64::from(cpus)))
}

impl BatchRow {
    /// Derives the row of one batch from its wire metrics.
    pub fn from_metrics(m: &BatchMetrics) -> Self {
        Self::from_batch(&Batch::from(m))
    }

    /// Derives the row of one batch.
    pub fn from_batch(m: &Batch) -> Self {
        let mib = m.bytes as f64 / MIB;
        let per_mib = |s: f64| if mib > 0.0 { s / mib } else { f64::NAN };
        let upload_s = seconds(&m.upload).unwrap_or(0.0);
        let download_s = seconds(&m.download).unwrap_or(0.0);
        let inference_s = seconds(&m.inference);
        let serving = download_s + inference_s.unwrap_or(0.0);
        let worker = m.worker.clone().unwrap_or_default();
        let [upload_p50_ms, upload_p90_ms, upload_p99_ms] = phase_quantiles_ms(&m.upload);
        let [download_p50_ms, download_p90_ms, download_p99_ms] = phase_quantiles_ms(&m.download);
        let versions = m.versions.clone().unwrap_or_default();
        let inference_p = m.inference.as_ref().map(|_| phase_quantiles_ms(&m.inference));
        let start_lag = m.inference.as_ref().and_then(|p| p.start_lag.as_ref()).map(|lag| quantiles_ms(lag)[2]);
        let phases = [&m.source, &m.upload, &m.download, &m.inference];
        let client_cpu_share = [&m.upload, &m.download, &m.inference].into_iter().filter_map(|p| cpu_share(p, worker.cpus)).reduce(f64::max);
        let load = m.load.as_ref();
        let (inference_mode, inference_load) = match load.and_then(|l| l.mode.map(|mode| (mode, l))) {
            Some((Mode::Closed, l)) => ("closed", Some(f64::from(l.concurrency))),
            Some((Mode::Open, l)) => ("open", Some(l.rate_per_second)),
            None => ("", None),
        };
        Self {
            job_key: m.job_key.clone(),
            run_id: m.run_id.clone(),
            round: m.round,
            platform: m.platform.clone(),
            batch_index: m.batch_index,
            images: m.images,
            bytes: m.bytes,
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
            upload_p90_ms,
            upload_p99_ms,
            download_p50_ms,
            download_p90_ms,
            download_p99_ms,
            inference_requests: m.inference.as_ref().map(|p| p.requests),
            inference_failed: m.inference.as_ref().map(|p| p.failed),
            inference_p50_ms: inference_p.map(|p| p[0]),
            inference_p90_ms: inference_p.map(|p| p[1]),
            inference_p99_ms: inference_p.map(|p| p[2]),
            inference_start_lag_p99_ms: start_lag,
            latency_clamped: phases.iter().filter_map(|p| p.as_ref()).map(|p| p.clamped).sum(),
            inference_mode: inference_mode.to_owned(),
            inference_load,
            inference_target: load.map(|l| l.target.clone()).unwrap_or_default(),
            errors: m.errors,
            retries: m.retries,
            worker_id: worker.worker_id,
            host: worker.host,
            provider: worker.provider,
            region: worker.region,
            instance_type: worker.instance_type,
            cpus: worker.cpus,
            client_cpu_share,
            clock_offset_ms: m.clock_offset_us.map(|us| us as f64 / 1000.0),
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
    use proto::v1::PhaseTiming;

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

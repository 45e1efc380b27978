//! One batch as the analyzer reads it, converted once from the wire's `BatchMetrics`: the phases'
//! latency histograms decoded, the load mode typed, the counters summed. [`rows`](crate::rows) and
//! [`report`](crate::report) work on this type; the generated protobuf types stay here.
//!
//! A histogram that does not decode counts as one with no requests: every figure built from it
//! left such a histogram out before, and still does.

use hdrhistogram::Histogram;
use proto::v1::{BatchMetrics, LatencyWindow, LoadMode, PhaseTiming};

/// One batch's metrics.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    pub job_key: String,
    pub run_id: String,
    pub round: u32,
    pub platform: String,
    pub batch_index: u32,
    pub images: u32,
    /// The batch's bytes as planned (the manifest's sizes).
    pub bytes: u64,
    pub source: Option<Phase>,
    pub upload: Option<Phase>,
    pub download: Option<Phase>,
    /// Absent for storage-only platforms.
    pub inference: Option<Phase>,
    /// How the inference load was offered; absent when the worker did not say.
    pub load: Option<Load>,
    /// Errors and retries over every kind and phase.
    pub errors: u64,
    pub retries: u64,
    pub started_unix_ns: i64,
    pub finished_unix_ns: i64,
    /// Absent when the worker did not identify itself (the reproducibility block lists only those that did).
    pub worker: Option<Worker>,
    pub versions: Option<Versions>,
    pub attempt: u32,
    pub previous_deliveries: u32,
    pub manifest_sha256: String,
    /// The worker's clock minus the run store's, at its latest heartbeat before the batch.
    pub clock_offset_us: Option<i64>,
}

/// One timed phase of a batch.
#[derive(Debug, Clone, PartialEq)]
pub struct Phase {
    pub duration_ns: u64,
    /// The worker process's CPU time over the phase (0: not reported).
    pub cpu_ns: u64,
    pub requests: u64,
    pub failed: u64,
    /// Latencies above the histograms' limit, recorded at the limit.
    pub clamped: u64,
    /// From the phase's start to its first successful answer (0: none, or not reported).
    pub first_success_ns: u64,
    /// Per-request latency; in an open loop, from each request's intended start.
    pub latency: Latencies,
    /// Open loop: how late requests started against their schedule; `None` when none was recorded
    /// (the wire histogram was absent, as in a closed loop).
    pub start_lag: Option<Latencies>,
    /// The server's own time per request and the rest (network and client), when the endpoint
    /// reports its time.
    pub server: Latencies,
    pub outside: Latencies,
    /// Requests in windows of the phase, by intended start (step stages).
    pub windows: Vec<Window>,
}

/// The requests of one window of a phase.
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    pub start_ns: u64,
    pub width_ns: u64,
    pub requests: u64,
    pub failed: u64,
    pub latency: Latencies,
}

/// How a batch's inference load was offered.
#[derive(Debug, Clone, PartialEq)]
pub struct Load {
    /// `None`: the worker named no mode (or one this analyzer does not know).
    pub mode: Option<Mode>,
    /// Requests in flight (closed loop).
    pub concurrency: u32,
    /// Requests started per second (open loop), and from `step_at_seconds` on the rate of a step
    /// stage (0: no step).
    pub rate_per_second: f64,
    pub step_rate_per_second: f64,
    pub step_at_seconds: f64,
    /// The endpoint, as the worker described it.
    pub target: String,
}

/// A load mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// N requests in flight; a new one starts when one ends.
    Closed,
    /// Requests start at a fixed rate whatever the answers.
    Open,
}

/// The worker that ran a batch.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Worker {
    pub worker_id: String,
    pub host: String,
    pub platform: String,
    pub provider: String,
    pub region: String,
    pub instance_type: String,
    /// Processors the worker could use (0: not reported).
    pub cpus: u32,
}

/// The code and model a batch ran.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Versions {
    pub git_commit: String,
    pub model_hash: String,
}

/// A latency histogram (µs), decoded once, kept compact: the buckets that hold requests. A batch's
/// histogram has a few dozen of them, where decoded whole it is thousands of counters, and a report
/// holds tens of thousands of batches at once.
#[derive(Debug, Clone, PartialEq)]
pub struct Latencies {
    /// (lowest value of the bucket, requests in it), in value order.
    buckets: Vec<(u64, u64)>,
    /// The wire histogram's range and precision, so that [`Latencies::histogram`] has its buckets.
    low: u64,
    high: u64,
    sigfig: u8,
}

impl Latencies {
    /// Decodes a wire histogram (`proto::latency`); one that is empty or does not decode has no requests.
    pub fn decode(bytes: &[u8]) -> Self {
        match (!bytes.is_empty()).then(|| proto::latency::decode(bytes)) {
            Some(Ok(h)) => Self {
                buckets: h.iter_recorded().map(|v| (h.lowest_equivalent(v.value_iterated_to()), v.count_at_value())).collect(),
                low: h.low(),
                high: h.high(),
                sigfig: h.sigfig(),
            },
            // No buckets: the range only has to be valid (the histogram grows as it records).
            _ => Self { buckets: Vec::new(), low: 1, high: 2, sigfig: proto::latency::SIGFIG },
        }
    }

    /// True when no request was recorded.
    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }

    /// The histogram itself, for its quantiles and moments: the same counts in the same buckets as
    /// the wire histogram decoded.
    pub fn histogram(&self) -> Histogram<u64> {
        let mut h = Histogram::new_with_bounds(self.low, self.high, self.sigfig).expect("the bounds of a decoded histogram");
        h.auto(true);
        self.record_into(&mut h);
        h
    }

    /// Merges histograms into one (the histogram of all their requests); `None` when none recorded any.
    pub fn merge<'a>(all: impl IntoIterator<Item = &'a Latencies>) -> Option<Histogram<u64>> {
        let mut merged = proto::latency::new_histogram();
        for l in all {
            l.record_into(&mut merged);
        }
        (!merged.is_empty()).then_some(merged)
    }

    /// Adds the requests to `h`, each bucket at its lowest value, as `Histogram::add` does when
    /// the two histograms' buckets differ (the same buckets when they do not).
    fn record_into(&self, h: &mut Histogram<u64>) {
        for &(value, count) in &self.buckets {
            // An auto-resizing histogram grows to hold any value a histogram recorded.
            let _ = h.record_n(value, count);
        }
    }
}

impl From<&PhaseTiming> for Phase {
    fn from(p: &PhaseTiming) -> Self {
        Self {
            duration_ns: p.duration_ns,
            cpu_ns: p.cpu_ns,
            requests: p.requests,
            failed: p.failed,
            clamped: p.clamped,
            first_success_ns: p.first_success_ns,
            latency: Latencies::decode(&p.latency_histogram),
            start_lag: (!p.start_lag_histogram.is_empty()).then(|| Latencies::decode(&p.start_lag_histogram)),
            server: Latencies::decode(&p.server_histogram),
            outside: Latencies::decode(&p.outside_histogram),
            windows: p.windows.iter().map(Window::from).collect(),
        }
    }
}

impl From<&LatencyWindow> for Window {
    fn from(w: &LatencyWindow) -> Self {
        Self { start_ns: w.start_ns, width_ns: w.width_ns, requests: w.requests, failed: w.failed, latency: Latencies::decode(&w.latency_histogram) }
    }
}

impl From<&BatchMetrics> for Batch {
    fn from(m: &BatchMetrics) -> Self {
        let load = m.inference_setup.as_ref().map(|s| Load {
            mode: match LoadMode::try_from(s.mode) {
                Ok(LoadMode::ClosedLoop) => Some(Mode::Closed),
                Ok(LoadMode::OpenLoop) => Some(Mode::Open),
                _ => None,
            },
            concurrency: s.concurrency,
            rate_per_second: s.rate_per_second,
            step_rate_per_second: s.step_rate_per_second,
            step_at_seconds: s.step_at_seconds,
            target: s.target.clone(),
        });
        let worker = m.worker.as_ref().map(|w| Worker {
            worker_id: w.worker_id.clone(),
            host: w.host.clone(),
            platform: w.platform.clone(),
            provider: w.provider.clone(),
            region: w.region.clone(),
            instance_type: w.instance_type.clone(),
            cpus: w.cpus,
        });
        Self {
            job_key: m.job_key.clone(),
            run_id: m.run_id.clone(),
            round: m.round,
            platform: m.platform.clone(),
            batch_index: m.batch_index,
            images: m.images,
            bytes: m.bytes,
            source: m.source.as_ref().map(Phase::from),
            upload: m.upload.as_ref().map(Phase::from),
            download: m.download.as_ref().map(Phase::from),
            inference: m.inference.as_ref().map(Phase::from),
            load,
            errors: m.errors.iter().map(|c| c.count).sum(),
            retries: m.retries.iter().map(|c| c.count).sum(),
            started_unix_ns: m.started_unix_ns,
            finished_unix_ns: m.finished_unix_ns,
            worker,
            versions: m.versions.as_ref().map(|v| Versions { git_commit: v.git_commit.clone(), model_hash: v.model_hash.clone() }),
            attempt: m.attempt,
            previous_deliveries: m.previous_deliveries,
            manifest_sha256: m.manifest_sha256.clone(),
            clock_offset_us: m.clock_offset_us,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_histogram_decoded_once_answers_as_the_wire_histogram_and_merges_as_proto_latency_does() {
        let encode = |us: &[u64]| {
            let mut h = proto::latency::new_histogram();
            for v in us {
                proto::latency::record(&mut h, *v);
            }
            proto::latency::encode(&h)
        };
        let (a, b) = (encode(&[1, 150, 2_047, 2_048, 30_000, 30_001, 999_999]), encode(&[7_000_000, 12, 12]));
        let wire = proto::latency::decode(&a).unwrap();
        let ours = Latencies::decode(&a).histogram();
        for q in [0.0, 0.1, 0.5, 0.9, 0.99, 1.0] {
            assert_eq!(ours.value_at_quantile(q), wire.value_at_quantile(q), "q = {q}");
        }
        assert_eq!((ours.len(), ours.max(), ours.min(), ours.mean()), (wire.len(), wire.max(), wire.min(), wire.mean()));
        let merged = Latencies::merge([&Latencies::decode(&a), &Latencies::decode(&b), &Latencies::decode(&[3, 1])]).unwrap();
        let expected = proto::latency::merge([a.as_slice(), b.as_slice(), &[3, 1]]).unwrap();
        assert_eq!(merged.iter_recorded().map(|v| (v.value_iterated_to(), v.count_at_value())).collect::<Vec<_>>(), expected.iter_recorded().map(|v| (v.value_iterated_to(), v.count_at_value())).collect::<Vec<_>>());
        assert!(Latencies::decode(&[9, 9]).is_empty() && Latencies::decode(&[]).is_empty());
        assert_eq!(Latencies::merge([&Latencies::decode(&[])]), None);
    }
}

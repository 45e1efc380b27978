//! What the phases of one batch measure, shared by the storage phases (`phases.rs`) and the
//! inference phase (`inference.rs`): each phase's [`PhaseRun`], the batch's [`BatchRun`], the
//! [`PlatformFailure`] that ends a batch, and the [`Clock`] every phase is timed with.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use proto::v1::InferenceSetup;
use storage::{ErrorKind, StorageError};

/// Measurements of one phase of one batch.
#[derive(Debug, Clone)]
pub struct PhaseRun {
    pub duration: Duration,
    pub requests: u64,
    pub failed: u64,
    /// Per-request latency in microseconds.
    pub latency: Histogram<u64>,
    /// Latencies above the histogram's limit, recorded at the limit.
    pub clamped: u64,
    /// Open loop: how late each request started against its intended start, in microseconds.
    pub start_lag: Option<Histogram<u64>>,
    /// CPU time the worker's process used during the phase (all its threads).
    pub cpu: Duration,
    /// Inference, when the endpoint reports its own time: per request, that time (queue and model)
    /// and the rest of the latency from the request's actual start (network and client), in µs.
    pub server: Option<Histogram<u64>>,
    pub outside: Option<Histogram<u64>>,
    /// Inference: from the phase's start to the first successful answer.
    pub first_success: Option<Duration>,
    /// Inference, when the job asked for them: latency per window of (intended) start.
    pub windows: Vec<proto::v1::LatencyWindow>,
    /// Failed requests by kind ("not_found", "checksum_mismatch", ...).
    pub errors: BTreeMap<String, u64>,
    /// Retries by the kind of failure that caused them ("throttled", "timeout", ...).
    pub retries: BTreeMap<String, u64>,
}

impl PhaseRun {
    pub(crate) fn new() -> Self {
        Self {
            duration: Duration::ZERO,
            requests: 0,
            failed: 0,
            latency: proto::latency::new_histogram(),
            clamped: 0,
            start_lag: None,
            cpu: Duration::ZERO,
            server: None,
            outside: None,
            first_success: None,
            windows: Vec::new(),
            errors: BTreeMap::new(),
            retries: BTreeMap::new(),
        }
    }

    /// Records one request: its latency (retries and backoff included, as the caller waited) and
    /// the retries it took.
    pub(crate) fn request(&mut self, took: Duration, retries: &[ErrorKind]) {
        self.requests += 1;
        self.clamped += u64::from(proto::latency::record(&mut self.latency, micros(took)));
        for kind in retries {
            *self.retries.entry(kind.as_str().to_owned()).or_insert(0) += 1;
        }
    }

    pub(crate) fn fail(&mut self, kind: &str) {
        self.failed += 1;
        *self.errors.entry(kind.to_owned()).or_insert(0) += 1;
    }
}

/// The platform cannot serve the batch at all; the job goes back to the queue.
#[derive(Debug, thiserror::Error)]
#[error("{phase} on {target}: {source}")]
pub struct PlatformFailure {
    pub phase: &'static str,
    /// What failed, as its `describe()` says: the dataset or platform store, or the model endpoint.
    pub target: String,
    #[source]
    pub source: StorageError,
}

impl PlatformFailure {
    pub(crate) fn new(phase: &'static str, target: String, source: StorageError) -> Self {
        Self { phase, target, source }
    }
}

/// Results of the phases of one batch.
#[derive(Debug, Clone)]
pub struct BatchRun {
    pub source: PhaseRun,
    pub upload: PhaseRun,
    pub download: PhaseRun,
    /// Present when the platform has a model endpoint.
    pub inference: Option<InferenceRun>,
    /// Time spent deleting the uploads after the batch: storage work outside the timed phases.
    pub cleanup: Duration,
}

/// Results of the inference phase of one batch.
#[derive(Debug, Clone)]
pub struct InferenceRun {
    pub phase: PhaseRun,
    pub setup: InferenceSetup,
    /// Detections in all answers that report them.
    pub detections: u64,
    /// SHA-256 of the model that answered, when the answers say.
    pub model_sha256: Option<String>,
}

pub(crate) fn micros(d: Duration) -> u64 {
    d.as_micros().min(u128::from(u64::MAX)) as u64
}

/// CPU time (user + system) this process has used so far, over all its threads.
pub(crate) fn process_cpu() -> Duration {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes a whole `rusage` into the pointer it is given, which points to one.
    let usage = unsafe {
        if libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) != 0 {
            return Duration::ZERO;
        }
        usage.assume_init()
    };
    let time = |t: libc::timeval| Duration::new(t.tv_sec.max(0) as u64, (t.tv_usec.max(0) as u32) * 1000);
    time(usage.ru_utime) + time(usage.ru_stime)
}

/// Wall time and process CPU time from a phase's start.
pub(crate) struct Clock {
    wall: Instant,
    cpu: Duration,
}

impl Clock {
    pub(crate) fn start() -> Self {
        Self { wall: Instant::now(), cpu: process_cpu() }
    }

    pub(crate) fn wall(&self) -> Instant {
        self.wall
    }

    /// Sets the phase's wall time and CPU time up to now.
    pub(crate) fn stop(&self, phase: &mut PhaseRun) {
        phase.duration = self.wall.elapsed();
        phase.cpu = process_cpu().saturating_sub(self.cpu);
    }
}

//! The inference phase: every image of the batch (as downloaded and verified) goes to the platform's
//! model endpoint; the phase time is the wall time of the whole batch, as in the paper.
//!
//! Two ways to offer the load:
//! - closed loop (the paper's client): `concurrency` requests in flight, the next starting when one
//!   finishes; each latency counts from the request's start;
//! - open loop: requests start at a fixed rate whatever the endpoint does, and each latency counts
//!   from the request's *intended* start, so an endpoint that falls behind shows its queueing in the
//!   latencies instead of slowing the client down (coordinated omission).
//!
//! Every request has a timeout and retries with backoff (each counted by kind); a request that still
//! fails counts as an error of its kind and the batch goes on, unless the endpoint itself is unusable
//! (unreachable, unknown, refusing our credentials), which returns the job to the queue.

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use invoke::{Invoked, Invoker};
use proto::v1::{InferenceSetup, LoadMode, ObjectRef};
use serde::Deserialize;
use storage::{Attempted, RetryPolicy};

use crate::batch::{Clock, InferenceRun, PhaseRun, PlatformFailure, micros};

/// When request `j` (from 0) of an open-loop phase at `rate` per second is due, from the phase's
/// start. Computed from `j` directly, not by adding intervals, so that no rounding accumulates.
pub fn intended_offset(j: usize, rate: f64) -> Duration {
    Duration::from_secs_f64(j as f64 / rate)
}

/// How requests are offered to the endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(tag = "mode", rename_all = "lowercase", deny_unknown_fields)]
pub enum Load {
    /// `concurrency` requests in flight.
    Closed { concurrency: usize },
    /// `rate` requests started per second.
    Open { rate: f64 },
}

impl Default for Load {
    fn default() -> Self {
        Load::Closed { concurrency: DEFAULT_INFERENCE_CONCURRENCY }
    }
}

/// Window of a stability wait when the job names none.
pub const DEFAULT_STABILITY_WINDOW: Duration = Duration::from_secs(1);

/// Requests in flight by default: a small client, as the paper's was.
pub const DEFAULT_INFERENCE_CONCURRENCY: usize = 4;

/// How long a phase lasts at least, for a stage of a load sweep: the batch's images are sent over
/// again, in order, until both bounds are reached; and, for a step stage, where the rate steps. The
/// default (zero, no step, no windows) sends each image once.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Span {
    pub min_requests: u64,
    pub min_duration: Duration,
    /// Open loop: after `at` the rate becomes `rate`, for at least `min_duration` more.
    pub step: Option<Step>,
    /// Latency is also recorded per window of this width, by each request's (intended) start.
    pub window: Option<Duration>,
    /// Once the span is reached, the stage goes on until the p99s of its last two complete
    /// windows agree within a tolerance (perf_analyzer's stability), or until `max_duration`.
    pub stability: Option<Stability>,
}

/// When a stage is stable enough to end.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stability {
    /// Largest relative difference of two consecutive windows' p99: |a − b| ≤ tolerance × max(a, b).
    pub tolerance: f64,
    pub max_duration: Duration,
}

impl Stability {
    /// True when two consecutive windows' p99s agree.
    pub fn agree(&self, a_ms: f64, b_ms: f64) -> bool {
        (a_ms - b_ms).abs() <= self.tolerance * a_ms.max(b_ms)
    }
}

/// A step in an open loop's rate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Step {
    pub rate: f64,
    pub at: Duration,
}

impl Span {
    /// Requests an open loop at `rate` before its step (those due before `at`).
    fn before_step(rate: f64, step: &Step) -> usize {
        (rate * step.at.as_secs_f64()).ceil() as usize
    }

    /// Requests an open loop at `rate` sends for `images` images: enough for both bounds (after the
    /// step, for a step stage).
    pub fn open_requests(&self, images: usize, rate: f64) -> usize {
        if images == 0 {
            return 0;
        }
        let for_time = match &self.step {
            None => (rate * self.min_duration.as_secs_f64()).ceil() as usize,
            Some(step) => Self::before_step(rate, step) + (step.rate * self.min_duration.as_secs_f64()).ceil().max(1.0) as usize,
        };
        let spanned = images.max(self.min_requests as usize).max(for_time);
        match (&self.stability, &self.step) {
            // Enough to run until the longest a stability wait may take; it usually ends sooner.
            (Some(st), None) => spanned.max((rate * st.max_duration.as_secs_f64()).ceil() as usize),
            _ => spanned,
        }
    }

    /// True once a running stage has made its span: enough requests and enough time.
    fn reached(&self, finished: usize, elapsed: Duration) -> bool {
        finished as u64 >= self.min_requests && elapsed >= self.min_duration
    }

    /// When request `j` of an open loop at `rate` is due, from the phase's start.
    pub fn open_offset(&self, j: usize, rate: f64) -> Duration {
        match &self.step {
            None => intended_offset(j, rate),
            Some(step) => {
                let before = Self::before_step(rate, step);
                if j < before { intended_offset(j, rate) } else { step.at + intended_offset(j - before, step.rate) }
            }
        }
    }
}

impl Load {
    /// The load and span a job asks for (a stage of a load sweep), checked like a configured one.
    pub fn from_job(load: &proto::v1::Load) -> Result<(Load, Span), String> {
        let chosen = match LoadMode::try_from(load.mode) {
            Ok(LoadMode::ClosedLoop) => Load::Closed { concurrency: load.concurrency as usize },
            Ok(LoadMode::OpenLoop) => Load::Open { rate: load.rate_per_second },
            _ => return Err(format!("job load has no known mode ({})", load.mode)),
        };
        chosen.validate()?;
        if !(load.min_seconds.is_finite() && (0.0..=86_400.0).contains(&load.min_seconds)) {
            return Err(format!("job load min_seconds {} is not between 0 and 86400", load.min_seconds));
        }
        let step = match load.step_rate_per_second {
            0.0 => None,
            rate => {
                if !matches!(chosen, Load::Open { .. }) {
                    return Err("job load: a step needs an open loop".into());
                }
                Load::Open { rate }.validate()?;
                if !(load.step_at_seconds.is_finite() && load.step_at_seconds > 0.0 && load.step_at_seconds <= 86_400.0) {
                    return Err(format!("job load step_at_seconds {} is not in (0, 86400]", load.step_at_seconds));
                }
                Some(Step { rate, at: Duration::from_secs_f64(load.step_at_seconds) })
            }
        };
        let window = match load.window_seconds {
            0.0 => None,
            w if w.is_finite() && (0.001..=3600.0).contains(&w) => Some(Duration::from_secs_f64(w)),
            w => return Err(format!("job load window_seconds {w} is not between 0.001 and 3600")),
        };
        let stability = match load.stable_within {
            0.0 => None,
            t if t.is_finite() && t > 0.0 && t < 1.0 => {
                if step.is_some() {
                    return Err("job load: a step stage has no stability wait".into());
                }
                if !(load.max_seconds.is_finite() && load.max_seconds >= load.min_seconds && load.max_seconds <= 86_400.0) {
                    return Err(format!("job load max_seconds {} is not between min_seconds and 86400", load.max_seconds));
                }
                Some(Stability { tolerance: t, max_duration: Duration::from_secs_f64(load.max_seconds) })
            }
            t => return Err(format!("job load stable_within {t} is not between 0 and 1")),
        };
        let window = window.or(stability.map(|_| DEFAULT_STABILITY_WINDOW));
        Ok((chosen, Span { min_requests: load.min_requests, min_duration: Duration::from_secs_f64(load.min_seconds), step, window, stability }))
    }

    pub fn validate(&self) -> Result<(), String> {
        match *self {
            Load::Closed { concurrency } if concurrency == 0 || concurrency > 1024 => Err("inference concurrency must be between 1 and 1024".into()),
            Load::Open { rate } if !(rate.is_finite() && rate > 0.0 && rate <= 100_000.0) => {
                Err("open-loop rate must be a positive number of requests per second (at most 100000)".into())
            }
            _ => Ok(()),
        }
    }
}

/// The windows of a stage with a stability wait, as its requests finish: a window is complete once
/// it is over (no request starts in it any more) and every request that started in it has finished.
struct Live {
    stability: Stability,
    width: Duration,
    windows: std::collections::BTreeMap<u64, (u64, hdrhistogram::Histogram<u64>)>,
}

impl Live {
    fn new(stability: Stability, width: Duration) -> Self {
        Self { stability, width, windows: Default::default() }
    }

    fn finished(&mut self, offset: Duration, took: Duration) {
        let index = (offset.as_nanos() / self.width.as_nanos().max(1)) as u64;
        let (count, h) = self.windows.entry(index).or_insert_with(|| (0, proto::latency::new_histogram()));
        *count += 1;
        let _ = proto::latency::record(h, micros(took));
    }

    /// True when the last two complete windows' p99s agree; `starts` counts the requests started
    /// in each window.
    fn stable(&self, elapsed: Duration, starts: &std::collections::BTreeMap<u64, u64>) -> bool {
        let over = (elapsed.as_nanos() / self.width.as_nanos().max(1)) as u64;
        let complete = |i: u64| {
            let started = starts.get(&i).copied().unwrap_or(0);
            let done = self.windows.get(&i);
            i < over && started > 0 && done.is_some_and(|(n, _)| *n == started)
        };
        // The newest window that is complete with the one before it decides.
        let Some(last) = (1..over).rev().find(|&i| complete(i) && complete(i - 1)) else { return false };
        let p99 = |i: u64| self.windows[&i].1.value_at_quantile(0.99) as f64 / 1000.0;
        self.stability.agree(p99(last - 1), p99(last))
    }
}

/// The requests of one window of a phase, as they are counted.
struct Window {
    requests: u64,
    failed: u64,
    latency: hdrhistogram::Histogram<u64>,
}

impl Window {
    fn new() -> Self {
        Self { requests: 0, failed: 0, latency: proto::latency::new_histogram() }
    }
}

/// The inference phase of a platform.
pub struct Inference<'a> {
    pub invoker: &'a dyn Invoker,
    pub load: Load,
    pub span: Span,
    pub retry: RetryPolicy,
}

/// Content type of an image by its key's extension.
pub fn content_type(key: &str) -> &'static str {
    let lower = key.to_ascii_lowercase();
    if lower.ends_with(".png") {
        "image/png"
    } else if lower.ends_with(".jpg") || lower.ends_with(".jpeg") {
        "image/jpeg"
    } else {
        "application/x-image"
    }
}

impl Inference<'_> {
    pub fn setup(&self) -> InferenceSetup {
        let (mode, concurrency, rate) = match self.load {
            Load::Closed { concurrency } => (LoadMode::ClosedLoop, concurrency as u32, 0.0),
            Load::Open { rate } => (LoadMode::OpenLoop, 0, rate),
        };
        InferenceSetup {
            target_kind: self.invoker.kind().into(),
            target: self.invoker.describe(),
            mode: mode as i32,
            concurrency,
            rate_per_second: rate,
            step_rate_per_second: self.span.step.map_or(0.0, |s| s.rate),
            step_at_seconds: self.span.step.map_or(0.0, |s| s.at.as_secs_f64()),
        }
    }

    /// Sends each of `images` (index into `objects`, bytes) to the endpoint, over again in order
    /// until the span is reached.
    pub async fn run(&self, objects: &[ObjectRef], images: &[(usize, Bytes)]) -> Result<InferenceRun, PlatformFailure> {
        let clock = Clock::start();
        let started = clock.wall();
        let count = images.len();
        // Each request: its answer, its latency from `from`, how late it actually started, and when
        // it was to start (`from`) from the phase's start.
        // Requests started per window, for a stability wait to know when a window is complete.
        let starts: std::sync::Mutex<std::collections::BTreeMap<u64, u64>> = Default::default();
        let starts = &starts;
        let width = self.span.window.filter(|_| self.span.stability.is_some());
        let send = move |j: usize, from: Instant| async move {
            let (i, data) = &images[j % count];
            let key = &objects[*i].key;
            if let Some(width) = width {
                let index = (from.saturating_duration_since(started).as_nanos() / width.as_nanos().max(1)) as u64;
                *starts.lock().expect("starts lock").entry(index).or_insert(0) += 1;
            }
            let lag = from.elapsed();
            let attempted = self.retry.run(key, || self.invoker.invoke(data.clone(), content_type(key))).await;
            (attempted, from.elapsed(), lag, from.saturating_duration_since(started))
        };
        let span = self.span;
        // Set once the stage is stable (its span reached, its last two windows agreeing): no
        // request starts after it.
        let enough = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = {
            let enough = enough.clone();
            move || enough.load(std::sync::atomic::Ordering::Relaxed)
        };
        let results = match self.load {
            Load::Closed { concurrency } => {
                // The next request is drawn when a slot frees, so the span is checked as it runs.
                let until = span.stability.map_or(Duration::ZERO, |s| s.max_duration);
                let more = move |j: &usize| {
                    let spanning = *j < count.max(span.min_requests as usize) || started.elapsed() < span.min_duration;
                    futures::future::ready(count > 0 && !stopped() && (spanning || started.elapsed() < until))
                };
                futures::stream::iter(0..).take_while(more).map(|j| send(j, Instant::now())).buffer_unordered(concurrency.max(1)).left_stream()
            }
            Load::Open { rate } => {
                // A thread of its own paces the starts: the OS's sleep keeps a schedule to tens of
                // microseconds, tokio's timer only to the next millisecond, which would be the
                // client's own lateness counted into every latency. The requests start on the
                // runtime as the pacer releases them, none waiting for another.
                let (release, mut released) = tokio::sync::mpsc::unbounded_channel();
                let n = span.open_requests(count, rate);
                std::thread::spawn(move || {
                    // The last stretch before each start is spun, not slept: a sleeping thread on a
                    // VM whose idle processors halt can wake milliseconds late. At most a quarter of
                    // the interval (and 1 ms) is spun, so the pacer uses at most a quarter of a core.
                    let spin = Duration::from_secs_f64((0.25 / rate).min(0.001));
                    for j in 0..n {
                        let due = started + span.open_offset(j, rate);
                        std::thread::sleep(due.saturating_duration_since(Instant::now() + spin));
                        while Instant::now() < due {
                            std::hint::spin_loop();
                        }
                        if stopped() || release.send(j).is_err() {
                            return; // stable, or the phase was abandoned (shutdown after the grace period)
                        }
                    }
                });
                let due = futures::stream::poll_fn(move |cx| released.poll_recv(cx));
                due.map(move |j| send(j, started + span.open_offset(j, rate))).buffer_unordered(n.max(1)).right_stream()
            }
        };
        futures::pin_mut!(results);
        let mut live = span.stability.zip(span.window).map(|(st, width)| Live::new(st, width));
        let mut collected: Vec<(Attempted<Invoked>, Duration, Duration, Duration)> = Vec::new();
        while let Some(result) = results.next().await {
            if let Some(live) = &mut live {
                live.finished(result.3, result.1);
                let starts = starts.lock().expect("starts lock").clone();
                if !enough.load(std::sync::atomic::Ordering::Relaxed) && span.reached(collected.len() + 1, started.elapsed()) && live.stable(started.elapsed(), &starts) {
                    enough.store(true, std::sync::atomic::Ordering::Relaxed);
                }
            }
            collected.push(result);
        }
        let results = collected;
        let mut phase = PhaseRun::new();
        clock.stop(&mut phase);
        if matches!(self.load, Load::Open { .. }) {
            let mut lags = proto::latency::new_histogram();
            for (_, _, lag, _) in &results {
                phase.clamped += u64::from(proto::latency::record(&mut lags, micros(*lag)));
            }
            phase.start_lag = Some(lags);
        }
        let (mut detections, mut model_sha256) = (0, None);
        let (mut server, mut outside) = (proto::latency::new_histogram(), proto::latency::new_histogram());
        let mut windows: std::collections::BTreeMap<u64, Window> = std::collections::BTreeMap::new();
        for (attempted, took, lag, offset) in results {
            phase.request(took, &attempted.retries);
            if let Some(width) = span.window {
                let w = windows.entry((offset.as_nanos() / width.as_nanos().max(1)) as u64).or_insert_with(Window::new);
                w.requests += 1;
                w.failed += u64::from(attempted.result.is_err());
                phase.clamped += u64::from(proto::latency::record(&mut w.latency, micros(took)));
            }
            if attempted.result.is_ok() {
                let done = offset + took;
                phase.first_success = Some(phase.first_success.map_or(done, |d| d.min(done)));
            }
            match attempted.result {
                Ok(invoked) => {
                    if let Some(ms) = invoked.server_ms.filter(|ms| ms.is_finite() && *ms >= 0.0) {
                        let server_time = Duration::from_secs_f64(ms / 1000.0);
                        phase.clamped += u64::from(proto::latency::record(&mut server, micros(server_time)));
                        let rest = took.saturating_sub(lag).saturating_sub(server_time);
                        phase.clamped += u64::from(proto::latency::record(&mut outside, micros(rest)));
                    }
                    detections += invoked.detections.unwrap_or(0) as u64;
                    model_sha256 = model_sha256.or(invoked.model_sha256);
                }
                Err(e) if e.kind.is_platform_failure() => {
                    return Err(PlatformFailure::new("inference", self.invoker.describe(), e));
                }
                Err(e) => phase.fail(e.kind.as_str()),
            }
        }
        if !server.is_empty() {
            (phase.server, phase.outside) = (Some(server), Some(outside));
        }
        if let Some(width) = span.window {
            phase.windows = windows
                .into_iter()
                .map(|(i, w)| proto::v1::LatencyWindow {
                    start_ns: i * width.as_nanos() as u64,
                    width_ns: width.as_nanos() as u64,
                    requests: w.requests,
                    failed: w.failed,
                    latency_histogram: proto::latency::encode(&w.latency),
                })
                .collect();
        }
        Ok(InferenceRun { phase, setup: self.setup(), detections, model_sha256 })
    }
}

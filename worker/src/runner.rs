//! The worker's loop: take a job, claim it in the run state, run its phases, publish its metrics with a
//! confirm, record it done, and only then acknowledge it.
//!
//! Whatever fails, nothing is lost: a job that is not acknowledged returns to its queue when the
//! connection closes; the broker or Redis going away ends the session, and the loop reconnects with
//! backoff. On shutdown the worker stops taking jobs, gives the job in hand a grace period to finish,
//! then returns it to the queue, and closes its connections in order.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use control::state::rules::{self, Unclaimed};
use control::state::{BatchRef, BatchState, Change, Outcome};
use control::consume::{Handler, backoff, consume, pause, stopped};
pub use control::consume::Connector;
use control::{Broker, BrokerError, Delivery, Namespace, Outgoing, RunStore, StateError};
use hdrhistogram::Histogram;
use prost::Message;
use proto::v1::worker_heartbeat::State as BeatState;
use proto::v1::{BatchJob, BatchMetrics, Versions, WorkerHeartbeat, WorkerIdentity};
use proto::JobKey;
use storage::Storage;
use tokio::sync::watch;

use crate::metrics::{self, Context};
use crate::batch::{BatchRun, PlatformFailure};
use crate::phases::Transfer;
use crate::settle::{Dropped, Happened, Reason, Settle, settle};

/// Everything a worker needs besides its broker session.
pub struct Worker {
    pub platform: String,
    pub ns: Namespace,
    pub prefetch: u16,
    pub concurrency: usize,
    /// Time the job in hand gets to finish after shutdown is requested.
    pub grace: Duration,
    pub heartbeat: Duration,
    pub keep_uploads: bool,
    /// Retries of storage requests, each counted in the metrics.
    pub retry: storage::RetryPolicy,
    pub identity: WorkerIdentity,
    pub versions: Versions,
    /// The dataset the batch's images are read from.
    pub source: Arc<dyn Storage>,
    /// The platform's object storage.
    pub target: Arc<dyn Storage>,
    /// The platform's model endpoint and how to load it; `None` for a storage-only platform.
    pub inference: Option<(Arc<dyn invoke::Invoker>, crate::inference::Load)>,
    pub store: Arc<dyn RunStore>,
    pub connector: Connector,
    /// Live metrics, served at `/metrics` when the worker is given an address.
    pub telemetry: Arc<service::telemetry::Registry>,
}

/// What a worker did, returned when it stops.
#[derive(Clone)]
pub struct WorkerStats {
    pub done: u64,
    /// Jobs given up after their delivery limit, or past their deadline.
    pub failed: u64,
    /// Copies of jobs already done or held by another worker, dropped.
    pub duplicates: u64,
    /// Jobs of cancelled runs, dropped.
    pub cancelled: u64,
    /// Messages that did not decode or break the contract, dead-lettered.
    pub malformed: u64,
    /// Jobs returned to the queue (platform failure, shutdown).
    pub returned: u64,
    pub reconnects: u64,
    /// Worker overhead per finished batch in microseconds: delivery to acknowledgement, minus the
    /// storage and model work (source, upload, download, inference, cleanup of uploads).
    pub overhead: Histogram<u64>,
}

impl std::fmt::Debug for WorkerStats {
    /// Prints the counts and the overhead's quantiles, not the histogram's buckets.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerStats")
            .field("done", &self.done)
            .field("failed", &self.failed)
            .field("duplicates", &self.duplicates)
            .field("cancelled", &self.cancelled)
            .field("malformed", &self.malformed)
            .field("returned", &self.returned)
            .field("reconnects", &self.reconnects)
            .field("overhead_p50_us", &self.overhead.value_at_quantile(0.5))
            .field("overhead_p99_us", &self.overhead.value_at_quantile(0.99))
            .finish()
    }
}

impl Default for WorkerStats {
    fn default() -> Self {
        Self {
            done: 0,
            failed: 0,
            duplicates: 0,
            cancelled: 0,
            malformed: 0,
            returned: 0,
            reconnects: 0,
            overhead: proto::latency::new_histogram(),
        }
    }
}

#[derive(Default)]
struct Beat {
    state: i32,
    current: String,
    done: u64,
    failed: u64,
    errors: u64,
    last_error: String,
    last_error_unix_ms: i64,
    /// This worker's clock minus the run store's, from the latest heartbeat that measured it.
    clock_offset_us: Option<i64>,
}

impl Beat {
    fn error(&mut self, count: u64, line: String) {
        self.errors += count;
        self.last_error = line;
        self.last_error_unix_ms = control::now_ms();
    }
}

/// This machine's clock minus the run store's, in microseconds: the store's clock is read between two
/// local readings and compared with their midpoint, as NTP does; `None` when the store is away.
async fn clock_offset(store: &dyn RunStore) -> Option<i64> {
    let before = control::now_us();
    let theirs = store.clock_us().await.ok()?;
    let after = control::now_us();
    Some(clock_offset_of(before, theirs, after))
}

/// The offset of a local clock read at `before` and `after` around a remote reading `theirs`.
fn clock_offset_of(before: i64, theirs: i64, after: i64) -> i64 {
    before + (after - before) / 2 - theirs
}

/// The states a batch is in while this worker holds it.
const RUNNING: &[BatchState] = &[BatchState::Running];

const ERRORS_TOTAL: &str = "cloudbench_worker_errors_total";
const ERRORS_HELP: &str = "Failed requests, by phase and kind.";
const RETRIES_TOTAL: &str = "cloudbench_worker_retries_total";
const RETRIES_HELP: &str = "Retried requests, by phase and kind.";

/// Result of running one job's phases.
enum Ran {
    Finished(Box<BatchMetrics>, Duration),
    PlatformFailed(PlatformFailure),
    /// Shutdown came and the grace period ran out.
    Interrupted,
}

/// Runs a batch's storage phases, then its inference phase (when the platform has an endpoint) on
/// the images downloaded intact.
async fn run_phases(transfer: &Transfer<'_>, objects: &[proto::v1::ObjectRef], inference: Option<&crate::inference::Inference<'_>>) -> Result<BatchRun, PlatformFailure> {
    let (mut run, images) = transfer.run(objects, inference.is_some()).await?;
    if let Some(phase) = inference {
        run.inference = Some(phase.run(objects, &images).await?);
    }
    Ok(run)
}

fn unix_ns() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as i64).unwrap_or(0)
}

/// One run of the worker's loop: the state the handler needs between deliveries.
struct Session<'a> {
    worker: &'a Worker,
    beat: &'a Mutex<Beat>,
    stop: &'a watch::Receiver<bool>,
    stats: WorkerStats,
}

#[async_trait::async_trait]
impl Handler for Session<'_> {
    async fn handle(&mut self, broker: &dyn Broker, delivery: Delivery) -> Result<(), BrokerError> {
        self.worker.handle(broker, delivery, self.beat, self.stop, &mut self.stats).await
    }
}

impl Worker {
    /// Runs until `shutdown` resolves, then drains and returns what it did.
    pub async fn run(self: Arc<Self>, shutdown: impl std::future::Future<Output = ()> + Send + 'static) -> WorkerStats {
        let (stop_tx, stop) = watch::channel(false);
        tokio::spawn(async move {
            shutdown.await;
            let _ = stop_tx.send(true);
        });
        let beat = Arc::new(Mutex::new(Beat { state: BeatState::Idle as i32, ..Default::default() }));
        // Exported from the start, before the first failure: a dashboard's error panels find them.
        self.telemetry.declare_counter(ERRORS_TOTAL, ERRORS_HELP);
        self.telemetry.declare_counter(RETRIES_TOTAL, RETRIES_HELP);
        let heartbeats = tokio::spawn(self.clone().heartbeat_loop(beat.clone(), stop.clone()));
        let mut session = Session { worker: &self, beat: &beat, stop: &stop, stats: WorkerStats::default() };
        tracing::info!(worker = %self.identity.worker_id, platform = self.platform, "worker running");
        let reconnects = consume(&self.connector, &self.ns.job_queue(&self.platform), self.prefetch, &stop, &mut session).await;
        let mut stats = session.stats;
        stats.reconnects = reconnects;
        beat.lock().expect("beat lock").state = BeatState::Draining as i32;
        let _ = heartbeats.await;
        stats
    }

    async fn heartbeat_loop(self: Arc<Self>, beat: Arc<Mutex<Beat>>, stop: watch::Receiver<bool>) {
        let started = control::now_ms();
        let ttl = self.heartbeat.as_millis() as u64 * 3;
        loop {
            let payload = {
                let b = beat.lock().expect("beat lock");
                WorkerHeartbeat {
                    worker: Some(self.identity.clone()),
                    versions: Some(self.versions.clone()),
                    state: if *stop.borrow() { BeatState::Draining as i32 } else { b.state },
                    current_job: b.current.clone(),
                    jobs_done: b.done,
                    jobs_failed: b.failed,
                    started_unix_ms: started,
                    sent_unix_ms: control::now_ms(),
                    errors: b.errors,
                    last_error: b.last_error.clone(),
                    last_error_unix_ms: b.last_error_unix_ms,
                }
                .encode_to_vec()
            };
            if let Err(e) = self.store.heartbeat(&self.identity.worker_id, &payload, ttl).await {
                tracing::warn!(error = %e, "heartbeat not recorded");
            }
            if let Some(offset) = clock_offset(self.store.as_ref()).await {
                beat.lock().expect("beat lock").clock_offset_us = Some(offset);
            }
            if !pause(self.heartbeat, &stop).await {
                return;
            }
        }
    }

    /// Retries a run-state call while the store is unavailable, until it succeeds or shutdown.
    async fn retry_state<T, F, Fut>(&self, what: &str, stop: &watch::Receiver<bool>, mut call: F) -> Result<T, StateError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, StateError>>,
    {
        let mut attempt = 0;
        loop {
            match call().await {
                Err(StateError::Unavailable(reason)) if !*stop.borrow() => {
                    tracing::warn!(what, reason, "run-state store unavailable; retrying");
                    attempt += 1;
                    if !pause(backoff(attempt), stop).await {
                        return Err(StateError::Unavailable(reason));
                    }
                }
                other => return other,
            }
        }
    }

    async fn change(&self, key: &JobKey, from: &'static [BatchState], to: BatchState, stop: &watch::Receiver<bool>) -> Result<Outcome, StateError> {
        let change = Change {
            batch: BatchRef { platform: key.platform.clone(), round: key.round, index: key.batch_index },
            from,
            to,
            owner: if to == BatchState::Running { self.identity.worker_id.clone() } else { String::new() },
            bump_attempt: false,
        };
        let changes = [change];
        match self.retry_state("batch transition", stop, || self.store.transition(&key.run_id, &changes, control::now_ms())).await {
            Ok(mut outcomes) => Ok(outcomes.pop().unwrap_or(Outcome::Missing)),
            // A run the store does not know has none of its batches.
            Err(StateError::UnknownRun(_)) => Ok(Outcome::Missing),
            Err(e) => Err(e),
        }
    }

    /// Handles one delivery to the end: it is settled exactly once, unless the broker is lost.
    async fn handle(
        &self,
        broker: &dyn Broker,
        delivery: Delivery,
        beat: &Mutex<Beat>,
        stop: &watch::Receiver<bool>,
        stats: &mut WorkerStats,
    ) -> Result<(), BrokerError> {
        let received = Instant::now();
        let previous = delivery.previous_deliveries;
        let (key, job) = match proto::validate::batch_job(&delivery.payload) {
            Ok(parsed) => parsed,
            Err(e) => {
                tracing::error!(message_id = ?delivery.message_id, error = %e, "malformed job dead-lettered");
                return self.apply(delivery, settle(Happened::Malformed, previous, 0), None, stop, stats).await;
            }
        };
        let decide = |happened| settle(happened, previous, job.max_deliveries);
        if job.platform != self.platform {
            tracing::error!(job = %key, platform = self.platform, "job for another platform dead-lettered");
            return self.apply(delivery, decide(Happened::Malformed), None, stop, stats).await;
        }
        if let Some(Err(e)) = job.load.as_ref().map(crate::inference::Load::from_job) {
            tracing::error!(job = %key, error = e, "job with an unusable load dead-lettered");
            return self.apply(delivery, decide(Happened::Malformed), None, stop, stats).await;
        }
        let claim_from = rules::claim_from(previous > 0);
        let unclaimed = Some((&key, claim_from));
        if job.deadline_unix_ms > 0 && control::now_ms() > job.deadline_unix_ms {
            tracing::warn!(job = %key, "job past its deadline: failed and dead-lettered");
            return self.apply(delivery, decide(Happened::PastDeadline), unclaimed, stop, stats).await;
        }
        let claim = match self.change(&key, claim_from, BatchState::Running, stop).await {
            Ok(o) => o,
            Err(e) => {
                tracing::warn!(job = %key, error = %e, "cannot claim the job; returning it");
                return self.apply(delivery, decide(Happened::StoreAway), unclaimed, stop, stats).await;
            }
        };
        match claim {
            Outcome::Applied(_) => {}
            Outcome::Missing => {
                tracing::error!(job = %key, "job of an unknown run dead-lettered");
                return self.apply(delivery, decide(Happened::Malformed), unclaimed, stop, stats).await;
            }
            Outcome::Refused(status) => match rules::unclaimed(status.state, &status.owner, &self.identity.worker_id) {
                Unclaimed::Mine => {}
                Unclaimed::Duplicate => {
                    tracing::info!(job = %key, state = %status.state, "duplicate job dropped");
                    return self.apply(delivery, decide(Happened::Duplicate), unclaimed, stop, stats).await;
                }
                Unclaimed::Cancelled => return self.apply(delivery, decide(Happened::Cancelled), unclaimed, stop, stats).await,
            },
        }
        // From here on this worker holds the batch, `running`.
        let held = Some((&key, RUNNING));
        crate::crash::holding(key.batch_index);
        crate::crash::point("claimed");
        {
            let mut b = beat.lock().expect("beat lock");
            b.state = BeatState::Busy as i32;
            b.current = key.to_string();
        }
        self.telemetry.set("cloudbench_worker_busy", "1 while the worker runs a batch.", &[], 1.0);
        let clock_offset_us = beat.lock().expect("beat lock").clock_offset_us;
        let ran = self.run_with_grace(&key, &job, previous, clock_offset_us, stop).await;
        {
            let mut b = beat.lock().expect("beat lock");
            b.state = BeatState::Idle as i32;
            b.current.clear();
        }
        self.telemetry.set("cloudbench_worker_busy", "1 while the worker runs a batch.", &[], 0.0);
        match ran {
            Ran::Finished(metrics, phases) => {
                let message = Outgoing { id: key.to_string(), kind: proto::BATCH_METRICS_TYPE, payload: metrics.encode_to_vec() };
                broker.publish(&self.ns.metrics_queue(), &[message]).await?;
                crate::crash::point("published");
                // A stage of a load sweep: the coordinator decides the next stage from this result,
                // so it is in the run state before the batch is done there.
                if job.load.is_some() {
                    let batch = BatchRef { platform: key.platform.clone(), round: key.round, index: key.batch_index };
                    let payload = metrics.encode_to_vec();
                    if let Err(e) = self.retry_state("stage result", stop, || self.store.put_result(&key.run_id, &batch, &payload)).await {
                        tracing::warn!(job = %key, error = %e, "cannot record the stage's result; returning the job");
                        return self.apply(delivery, decide(Happened::StoreAway), held, stop, stats).await;
                    }
                }
                if let Err(e) = self.change(&key, rules::FINISH_FROM, BatchState::Done, stop).await {
                    // The metrics are safe; the job returns and its next claim sees it again.
                    tracing::warn!(job = %key, error = %e, "cannot record the job done; returning it");
                    return self.apply(delivery, decide(Happened::StoreAway), held, stop, stats).await;
                }
                crate::crash::point("recorded");
                self.apply(delivery, decide(Happened::Done), held, stop, stats).await?;
                self.record_batch(&metrics);
                {
                    let mut b = beat.lock().expect("beat lock");
                    b.done += 1;
                    let errors: u64 = metrics.errors.iter().map(|c| c.count).sum();
                    if errors > 0 {
                        let kinds: Vec<String> = metrics.errors.iter().map(|c| format!("{} {}", c.count, c.kind)).collect();
                        b.error(errors, format!("batch {key}: {errors} failed requests ({})", kinds.join(", ")));
                    }
                }
                let overhead = received.elapsed().saturating_sub(phases);
                proto::latency::record(&mut stats.overhead, overhead.as_micros() as u64);
                tracing::info!(
                    job = %key,
                    upload_ms = metrics.upload.as_ref().map(|p| p.duration_ns / 1_000_000),
                    download_ms = metrics.download.as_ref().map(|p| p.duration_ns / 1_000_000),
                    inference_ms = metrics.inference.as_ref().map(|p| p.duration_ns / 1_000_000),
                    "batch done"
                );
                Ok(())
            }
            Ran::PlatformFailed(failure) => {
                let deliveries = previous + 1;
                beat.lock().expect("beat lock").error(1, format!("batch {key}: {failure}"));
                let settled = decide(Happened::PlatformFailed);
                if let Settle::DeadLetter(_) = settled {
                    tracing::error!(job = %key, platform = self.platform, error = %failure, deliveries, "job failed at its delivery limit; dead-lettered");
                    beat.lock().expect("beat lock").failed += 1;
                } else {
                    tracing::warn!(job = %key, platform = self.platform, error = %failure, deliveries, "platform failure; returning the job");
                }
                self.apply(delivery, settled, held, stop, stats).await
            }
            Ran::Interrupted => {
                tracing::warn!(job = %key, "shutdown grace period over; returning the job");
                self.apply(delivery, decide(Happened::Interrupted), held, stop, stats).await
            }
        }
    }

    /// Does what `settled` says: records the batch's state where it calls for one (`batch`: the job's
    /// key and the states its batch may be in now), waits out a return's backoff, counts the outcome,
    /// and acknowledges, returns or dead-letters the message.
    async fn apply(
        &self,
        delivery: Delivery,
        settled: Settle,
        batch: Option<(&JobKey, &'static [BatchState])>,
        stop: &watch::Receiver<bool>,
        stats: &mut WorkerStats,
    ) -> Result<(), BrokerError> {
        let to = match settled {
            Settle::DeadLetter(Reason::Failed) => Some(BatchState::Failed),
            Settle::Return { unclaim: true, .. } => Some(BatchState::Queued),
            _ => None,
        };
        if let (Some(to), Some((key, from))) = (to, batch) {
            // Best effort: a batch left `running` is taken over by the job's next delivery, or
            // marked failed from the dead-letter queue.
            let _ = self.change(key, from, to, stop).await;
        }
        if let Settle::Return { after, .. } = settled
            && !after.is_zero()
        {
            pause(after, stop).await;
        }
        if settled == Settle::Ack {
            // Counted done only once the acknowledgement went through.
            delivery.ack().await?;
            self.count(settled, stats);
            return Ok(());
        }
        self.count(settled, stats);
        match settled {
            Settle::Ack | Settle::Drop(_) => delivery.ack().await,
            Settle::Return { .. } => delivery.requeue().await,
            Settle::DeadLetter(_) => delivery.dead_letter().await,
        }
    }

    /// Counts a settled job in the worker's stats and its live metrics.
    fn count(&self, settled: Settle, stats: &mut WorkerStats) {
        let counter = match settled {
            Settle::Ack => &mut stats.done,
            Settle::Drop(Dropped::Duplicate) => &mut stats.duplicates,
            Settle::Drop(Dropped::Cancelled) => &mut stats.cancelled,
            Settle::Return { .. } => &mut stats.returned,
            Settle::DeadLetter(Reason::Malformed) => &mut stats.malformed,
            Settle::DeadLetter(Reason::Failed) => &mut stats.failed,
        };
        *counter += 1;
        self.telemetry.add("cloudbench_worker_jobs_total", "Jobs handled, by outcome.", &[("outcome", settled.outcome())], 1.0);
    }

    /// Adds a finished batch's phases, bytes, requests, errors and retries to the live metrics.
    fn record_batch(&self, m: &BatchMetrics) {
        let t = &self.telemetry;
        let phases = [("source", &m.source), ("upload", &m.upload), ("download", &m.download), ("inference", &m.inference)];
        for (phase, timing) in phases {
            let Some(timing) = timing else { continue };
            let labels = [("phase", phase)];
            t.observe("cloudbench_worker_phase_seconds", "Wall time of a batch's phase.", &labels, service::telemetry::PHASE_SECONDS, timing.duration_ns as f64 / 1e9);
            t.add("cloudbench_worker_requests_total", "Requests made, by phase.", &labels, timing.requests as f64);
            // Every request's latency, from the batch's own histogram (each recorded value with its
            // count; the Prometheus buckets are coarser than the histogram's 3 digits).
            if let Ok(h) = proto::latency::decode(&timing.latency_histogram) {
                for v in h.iter_recorded() {
                    let seconds = h.lowest_equivalent(v.value_iterated_to()) as f64 / 1e6;
                    t.observe_n("cloudbench_worker_request_seconds", "Latency of single requests, by phase.", &labels, service::telemetry::REQUEST_SECONDS, seconds, v.count_at_value());
                }
            }
        }
        for phase in ["upload", "download"] {
            t.add("cloudbench_worker_bytes_total", "Bytes moved, by phase (the batches' planned sizes).", &[("phase", phase)], m.bytes as f64);
        }
        t.add("cloudbench_worker_images_total", "Images of finished batches.", &[], f64::from(m.images));
        let phase_name = |p: i32| proto::v1::Phase::try_from(p).map_or("unknown", |p| p.as_str_name()).trim_start_matches("PHASE_").to_ascii_lowercase();
        for c in &m.errors {
            let phase = phase_name(c.phase);
            t.add(ERRORS_TOTAL, ERRORS_HELP, &[("phase", &phase), ("kind", &c.kind)], c.count as f64);
        }
        for c in &m.retries {
            let phase = phase_name(c.phase);
            t.add(RETRIES_TOTAL, RETRIES_HELP, &[("phase", &phase), ("kind", &c.kind)], c.count as f64);
        }
    }

    /// Runs the phases; on shutdown, waits up to the grace period for them to finish.
    async fn run_with_grace(&self, key: &JobKey, job: &BatchJob, previous_deliveries: u32, clock_offset_us: Option<i64>, stop: &watch::Receiver<bool>) -> Ran {
        let work = self.execute(key, job, previous_deliveries, clock_offset_us);
        tokio::pin!(work);
        tokio::select! {
            ran = &mut work => ran,
            _ = stopped(stop.clone()) => {
                tracing::info!(job = %key, grace_s = self.grace.as_secs(), "shutdown requested; finishing the job in hand");
                tokio::time::timeout(self.grace, work).await.unwrap_or(Ran::Interrupted)
            }
        }
    }

    async fn execute(&self, key: &JobKey, job: &BatchJob, previous_deliveries: u32, clock_offset_us: Option<i64>) -> Ran {
        let started_unix_ns = unix_ns();
        let transfer = Transfer {
            source: self.source.as_ref(),
            target: self.target.as_ref(),
            concurrency: self.concurrency,
            prefix: format!("cloudbench/{}/{}/{}", job.run_id, job.round, job.platform),
            keep_uploads: self.keep_uploads,
            retry: self.retry,
        };
        // A job of a load sweep's stage brings its load (checked when the job was decoded); any
        // other job runs at the worker's own.
        let staged = job.load.as_ref().and_then(|l| crate::inference::Load::from_job(l).ok());
        let inference = self.inference.as_ref().map(|(invoker, load)| {
            let (load, span) = staged.unwrap_or((*load, Default::default()));
            crate::inference::Inference { invoker: invoker.as_ref(), load, span, retry: self.retry }
        });
        match run_phases(&transfer, &job.objects, inference.as_ref()).await {
            Err(failure) => Ran::PlatformFailed(failure),
            Ok(run) => {
                let inferring = run.inference.as_ref().map_or(Duration::ZERO, |i| i.phase.duration);
                let phases = run.source.duration + run.upload.duration + run.download.duration + inferring + run.cleanup;
                let ctx = Context {
                    identity: &self.identity,
                    versions: &self.versions,
                    started_unix_ns,
                    finished_unix_ns: unix_ns(),
                    previous_deliveries,
                    clock_offset_us,
                };
                Ran::Finished(Box::new(metrics::batch_metrics(key, job, &run, &ctx)), phases)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clock_offset_is_measured_against_the_midpoint_of_the_local_readings() {
        // Local clock 250 µs ahead; the remote was read 100 µs into a 200 µs round trip.
        assert_eq!(clock_offset_of(1_000_250, 1_000_100, 1_000_450), 250);
        assert_eq!(clock_offset_of(5_000, 9_000, 5_000), -4_000, "a clock behind is negative");
    }
}

//! The model behind a bounded queue: requests from any number of async tasks wait in the queue,
//! a dedicated thread takes up to a limit of them at a time (waiting at most `max_wait` for a
//! batch to fill once the first has arrived) and runs them through one forward pass. The limit is
//! the pass size that has measured the most images per second ([`crate::pass`]), up to `max_batch`,
//! or `max_batch` itself when `adaptive` is off.
//!
//! The async runtime never blocks on the model, and a full queue is an immediate answer
//! ([`Full`]), which the server turns into 503 with `Retry-After`, instead of memory growing
//! without bound under overload.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender, TrySendError};
use std::time::{Duration, Instant};

use detector::{Detector, ImageDetections, PostOptions};
use image::RgbImage;
use tokio::sync::oneshot;

use crate::metrics::Metrics;

/// How requests are grouped into forward passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchConfig {
    /// Most images in one forward pass.
    pub max_batch: usize,
    /// Longest an image waits for others to join its forward pass.
    pub max_wait: Duration,
    /// Images waiting beyond the one forward pass in progress; more are refused.
    pub queue: usize,
    /// Passes as large as measured throughput says pays (else always up to `max_batch`).
    pub adaptive: bool,
}

impl Default for BatchConfig {
    fn default() -> Self {
        Self { max_batch: 8, max_wait: Duration::from_millis(5), queue: 64, adaptive: true }
    }
}

/// One image's answer from the model thread.
#[derive(Debug, Clone)]
pub struct Answer {
    pub detections: ImageDetections,
    /// Time of the forward pass the image was in.
    pub inference: Duration,
    /// Time from submission to the start of that pass.
    pub queued: Duration,
    /// Images in that pass.
    pub batch_size: usize,
}

/// The queue is full: come back later.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the model's queue is full ({0} images waiting)")]
pub struct Full(pub usize);

struct Job {
    image: RgbImage,
    options: PostOptions,
    submitted: Instant,
    reply: oneshot::Sender<Answer>,
}

/// Handle to the model thread; cheap to clone. The thread ends when the last handle is dropped.
#[derive(Clone)]
pub struct Batcher {
    jobs: SyncSender<Job>,
    depth: Arc<AtomicUsize>,
    capacity: usize,
    metrics: Arc<Metrics>,
}

impl Batcher {
    /// Starts the model thread with `detector`.
    pub fn start(detector: Detector, config: BatchConfig, metrics: Arc<Metrics>) -> Self {
        let (jobs, queue) = mpsc::sync_channel::<Job>(config.queue.max(1));
        let depth = Arc::new(AtomicUsize::new(0));
        let thread_depth = depth.clone();
        let thread_metrics = metrics.clone();
        std::thread::Builder::new()
            .name("model".into())
            .spawn(move || serve(detector, config, queue, thread_depth, thread_metrics))
            .expect("spawning the model thread");
        Self { jobs, depth, capacity: config.queue.max(1), metrics }
    }

    /// Images waiting for the model.
    pub fn depth(&self) -> usize {
        self.depth.load(Ordering::Relaxed)
    }

    /// Queues one decoded image; the answer arrives on the returned receiver. A receiver dropped
    /// before its turn (the client gave up) costs no forward pass.
    pub fn submit(&self, image: RgbImage, options: PostOptions) -> Result<oneshot::Receiver<Answer>, Full> {
        let (reply, answer) = oneshot::channel();
        self.depth.fetch_add(1, Ordering::Relaxed);
        match self.jobs.try_send(Job { image, options, submitted: Instant::now(), reply }) {
            Ok(()) => {
                self.metrics.queue_depth.store(self.depth(), Ordering::Relaxed);
                Ok(answer)
            }
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.depth.fetch_sub(1, Ordering::Relaxed);
                Err(Full(self.capacity))
            }
        }
    }
}

fn serve(detector: Detector, config: BatchConfig, queue: mpsc::Receiver<Job>, depth: Arc<AtomicUsize>, metrics: Arc<Metrics>) {
    let max_batch = config.max_batch.max(1);
    let mut batch: Vec<Job> = Vec::with_capacity(max_batch);
    let mut sizer = crate::pass::PassSizer::new(max_batch);
    while let Ok(first) = queue.recv() {
        batch.push(first);
        let limit = if config.adaptive { sizer.limit() } else { max_batch };
        metrics.pass_limit.store(limit, Ordering::Relaxed);
        let deadline = Instant::now() + config.max_wait;
        while batch.len() < limit {
            match queue.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(job) => batch.push(job),
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
            }
        }
        depth.fetch_sub(batch.len(), Ordering::Relaxed);
        metrics.queue_depth.store(depth.load(Ordering::Relaxed), Ordering::Relaxed);
        batch.retain(|job| !job.reply.is_closed());
        if batch.is_empty() {
            continue;
        }
        let started = Instant::now();
        let (images, rest): (Vec<RgbImage>, Vec<_>) =
            batch.drain(..).map(|j| (j.image, (j.options, j.submitted, j.reply))).unzip();
        let options: Vec<PostOptions> = rest.iter().map(|(o, ..)| *o).collect();
        let (found, inference) = detector.detect_with(&images, &options);
        metrics.record_batch(images.len(), inference);
        sizer.record(images.len(), inference);
        for (detections, (_, submitted, reply)) in found.into_iter().zip(rest) {
            let queued = started.saturating_duration_since(submitted);
            let _ = reply.send(Answer { detections, inference, queued, batch_size: images.len() });
        }
    }
}

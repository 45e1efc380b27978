//! The timed phases of one batch, as the paper defines them: upload the batch's objects to the
//! platform's storage, download them back and verify every byte; then, when the platform has a model
//! endpoint, the inference phase (`inference.rs`) sends the downloaded images to it.
//!
//! Objects of a batch are transferred with a bounded number of requests in flight; a phase's time is
//! the wall time of the whole batch. Each request's latency goes into the phase's histogram; a failed
//! request counts as an error of its kind and the batch goes on, unless the failure says the platform
//! itself is unusable (bad credentials, missing bucket, unreachable), which ends the batch so the job
//! can be returned to the queue.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use hdrhistogram::Histogram;
use proto::v1::ObjectRef;
use sha2::{Digest, Sha256};
use storage::{ErrorKind, RetryPolicy, Storage, StorageError};

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
#[error("{phase} on {store}: {source}")]
pub struct PlatformFailure {
    pub phase: &'static str,
    pub store: String,
    #[source]
    pub source: StorageError,
}

impl PlatformFailure {
    fn new(phase: &'static str, store: &dyn Storage, source: StorageError) -> Self {
        Self { phase, store: store.describe(), source }
    }
}

/// Results of the phases of one batch.
#[derive(Debug, Clone)]
pub struct BatchRun {
    pub source: PhaseRun,
    pub upload: PhaseRun,
    pub download: PhaseRun,
    /// Present when the platform has a model endpoint.
    pub inference: Option<crate::inference::InferenceRun>,
    /// Time spent deleting the uploads after the batch: storage work outside the timed phases.
    pub cleanup: Duration,
}

/// Where a batch's objects come from and go to, and how.
pub struct Transfer<'a> {
    /// The dataset, read before the timed phases.
    pub source: &'a dyn Storage,
    /// The platform's object storage.
    pub target: &'a dyn Storage,
    /// Requests in flight per phase.
    pub concurrency: usize,
    /// Prefix of uploaded keys, scoped to the run so that concurrent runs never overwrite each other.
    pub prefix: String,
    /// Leaves uploaded objects in place instead of deleting them after the batch.
    pub keep_uploads: bool,
    /// Retries of throttled, timed-out and failed requests; each retry is counted in the metrics.
    pub retry: RetryPolicy,
}

fn checksum_ok(data: &[u8], expected: &str) -> bool {
    hex::encode(Sha256::digest(data)) == expected
}

/// Verifies off the async executor: hashing 1,024 images would hold a core for a noticeable time.
async fn verify(data: Bytes, expected: String) -> bool {
    tokio::task::spawn_blocking(move || checksum_ok(&data, &expected)).await.unwrap_or(false)
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

impl Transfer<'_> {
    fn upload_key(&self, key: &str) -> String {
        format!("{}/{key}", self.prefix)
    }

    /// Runs the source read, upload and download phases of a batch of `objects`, deletes the uploads
    /// unless told to keep them, then runs `inference` on the images downloaded intact.
    pub async fn run(&self, objects: &[ObjectRef], inference: Option<&crate::inference::Inference<'_>>) -> Result<BatchRun, PlatformFailure> {
        let (source, ready) = self.read_source(objects).await?;
        let (upload, uploaded) = self.upload(objects, &ready).await?;
        crate::crash::point("uploaded");
        drop(ready);
        let (download, downloaded) = self.download_keeping(objects, &uploaded, inference.is_some()).await;
        // The uploads go before inference, so that an endpoint failure leaves nothing behind.
        let cleanup = self.clean_up(objects, &uploaded).await;
        let download = download?;
        crate::crash::point("downloaded");
        let inference = match inference {
            Some(phase) => Some(phase.run(objects, &downloaded).await?),
            None => None,
        };
        Ok(BatchRun { source, upload, download, inference, cleanup })
    }

    // The stream closures below take indices, not references: closures over borrowed items make the
    // future's `Send` proof fail (higher-ranked lifetimes) where an async trait method awaits it.

    /// Source: reads the images the worker will upload, each verified against the manifest. Returns
    /// the phase and the objects read intact, by index into `objects`.
    pub async fn read_source(&self, objects: &[ObjectRef]) -> Result<(PhaseRun, Vec<(usize, Bytes)>), PlatformFailure> {
        let mut source = PhaseRun::new();
        let clock = Clock::start();
        let reads = futures::stream::iter(0..objects.len())
            .map(|i| async move {
                let t = Instant::now();
                let key = &objects[i].key;
                let attempted = self.retry.run(key, || self.source.get(key)).await;
                (i, attempted, t.elapsed())
            })
            .buffered(self.concurrency.max(1))
            .collect::<Vec<_>>()
            .await;
        let mut ready: Vec<(usize, Bytes)> = Vec::with_capacity(objects.len());
        for (i, attempted, took) in reads {
            source.request(took, &attempted.retries);
            let object = &objects[i];
            match attempted.result {
                Ok(data) if data.len() as u64 == object.size && verify(data.clone(), object.sha256.clone()).await => {
                    ready.push((i, data))
                }
                Ok(_) => source.fail("checksum_mismatch"),
                Err(e) if e.kind.is_platform_failure() => return Err(PlatformFailure::new("reading the dataset", self.source, e)),
                Err(e) => source.fail(e.kind.as_str()),
            }
        }
        clock.stop(&mut source);
        Ok((source, ready))
    }

    /// Upload: the paper's upload time, the wall time of putting the whole batch. Returns the phase
    /// and the indices of the objects stored.
    pub async fn upload(&self, objects: &[ObjectRef], ready: &[(usize, Bytes)]) -> Result<(PhaseRun, Vec<usize>), PlatformFailure> {
        let mut upload = PhaseRun::new();
        let clock = Clock::start();
        let puts = futures::stream::iter(0..ready.len())
            .map(|j| async move {
                let (i, data) = &ready[j];
                let key = self.upload_key(&objects[*i].key);
                let t = Instant::now();
                let attempted = self.retry.run(&key, || self.target.put(&key, data.clone())).await;
                (*i, attempted, t.elapsed())
            })
            .buffer_unordered(self.concurrency.max(1))
            .collect::<Vec<_>>()
            .await;
        clock.stop(&mut upload);
        let mut uploaded: Vec<usize> = Vec::with_capacity(ready.len());
        for (i, attempted, took) in puts {
            upload.request(took, &attempted.retries);
            match attempted.result {
                Ok(()) => uploaded.push(i),
                Err(e) if e.kind.is_platform_failure() => return Err(PlatformFailure::new("upload", self.target, e)),
                Err(e) => upload.fail(e.kind.as_str()),
            }
        }
        Ok((upload, uploaded))
    }

    /// Download: gets every uploaded object back and verifies every byte against the manifest.
    pub async fn download(&self, objects: &[ObjectRef], uploaded: &[usize]) -> Result<PhaseRun, PlatformFailure> {
        self.download_keeping(objects, uploaded, false).await.0
    }

    /// As [`Transfer::download`]; with `keep`, also returns the objects downloaded intact (index into
    /// `objects`, bytes) for the inference phase.
    async fn download_keeping(&self, objects: &[ObjectRef], uploaded: &[usize], keep: bool) -> (Result<PhaseRun, PlatformFailure>, Vec<(usize, Bytes)>) {
        let mut download = PhaseRun::new();
        let mut kept = Vec::new();
        let clock = Clock::start();
        let gets = futures::stream::iter(uploaded.to_vec())
            .map(|i| async move {
                let object = &objects[i];
                let key = self.upload_key(&object.key);
                let t = Instant::now();
                let attempted = self.retry.run(&key, || self.target.get(&key)).await;
                let took = t.elapsed();
                let verified = match &attempted.result {
                    Ok(data) => verify(data.clone(), object.sha256.clone()).await,
                    Err(_) => false,
                };
                (i, attempted.result.map(|data| (data, verified)), attempted.retries, took)
            })
            .buffer_unordered(self.concurrency.max(1))
            .collect::<Vec<_>>()
            .await;
        clock.stop(&mut download);
        for (i, result, retries, took) in gets {
            download.request(took, &retries);
            match result {
                Ok((data, true)) => {
                    if keep {
                        kept.push((i, data));
                    }
                }
                Ok((_, false)) => download.fail("checksum_mismatch"),
                Err(e) if e.kind.is_platform_failure() => return (Err(PlatformFailure::new("download", self.target, e)), Vec::new()),
                Err(e) => download.fail(e.kind.as_str()),
            }
        }
        // Requests in the batch's order, as the manifest lists them.
        kept.sort_unstable_by_key(|(i, _)| *i);
        (Ok(download), kept)
    }

    /// Deletes the uploads (not timed as a phase) unless told to keep them; returns the time it took.
    /// A failed delete leaves an object under the run's prefix, which `coordinator dataset cleanup`
    /// removes.
    pub async fn clean_up(&self, objects: &[ObjectRef], uploaded: &[usize]) -> Duration {
        let started = Instant::now();
        if !self.keep_uploads {
            let deletes = futures::stream::iter(uploaded.to_vec())
                .map(|i| async move {
                    let key = self.upload_key(&objects[i].key);
                    self.retry.run(&key, || self.target.delete(&key)).await.result
                })
                .buffer_unordered(self.concurrency.max(1))
                .collect::<Vec<_>>()
                .await;
            for e in deletes.into_iter().filter_map(Result::err) {
                tracing::warn!(error = %e, "deleting an uploaded object failed");
            }
        }
        started.elapsed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use storage::LocalDirStore;

    fn object(key: &str, data: &[u8]) -> ObjectRef {
        ObjectRef { key: key.into(), size: data.len() as u64, sha256: hex::encode(Sha256::digest(data)) }
    }

    #[tokio::test]
    async fn missing_and_corrupt_objects_are_counted_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        let source = LocalDirStore::create(dir.path().join("src"), false).unwrap();
        let target = LocalDirStore::create(dir.path().join("bucket"), false).unwrap();
        source.put("good.jpg", Bytes::from_static(b"good")).await.unwrap();
        source.put("corrupt.jpg", Bytes::from_static(b"flipped")).await.unwrap();
        let objects = [object("good.jpg", b"good"), object("corrupt.jpg", b"original"), object("missing.jpg", b"m")];
        let transfer = Transfer { source: &source, target: &target, concurrency: 2, prefix: "runs/r1/0".into(), keep_uploads: false, retry: RetryPolicy::none() };
        let run = transfer.run(&objects, None).await.unwrap();
        assert_eq!(run.source.requests, 3);
        assert_eq!(run.source.errors, BTreeMap::from([("checksum_mismatch".into(), 1), ("not_found".into(), 1)]));
        assert_eq!((run.upload.requests, run.upload.failed, run.download.requests, run.download.failed), (1, 0, 1, 0));
        assert_eq!(run.upload.latency.len(), 1);
        assert!(target.list("runs/").await.unwrap().is_empty(), "uploads are cleaned up");
    }

    /// A store that throttles every other put and times out the first get of each key.
    struct Flaky {
        inner: LocalDirStore,
        puts: std::sync::atomic::AtomicU32,
        got: std::sync::Mutex<std::collections::HashSet<String>>,
    }

    #[async_trait::async_trait]
    impl Storage for Flaky {
        fn describe(&self) -> String {
            "flaky".into()
        }
        async fn put(&self, key: &str, data: Bytes) -> Result<(), StorageError> {
            if self.puts.fetch_add(1, std::sync::atomic::Ordering::SeqCst).is_multiple_of(2) {
                return Err(StorageError::new(ErrorKind::Throttled, "SlowDown"));
            }
            self.inner.put(key, data).await
        }
        async fn get(&self, key: &str) -> Result<Bytes, StorageError> {
            if self.got.lock().unwrap().insert(key.to_owned()) {
                return Err(StorageError::new(ErrorKind::Timeout, "RequestTimeout"));
            }
            self.inner.get(key).await
        }
        async fn delete(&self, key: &str) -> Result<(), StorageError> {
            self.inner.delete(key).await
        }
        async fn list(&self, prefix: &str) -> Result<Vec<storage::ObjectInfo>, StorageError> {
            self.inner.list(prefix).await
        }
    }

    #[tokio::test]
    async fn retries_are_counted_by_kind_and_the_batch_still_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let source = LocalDirStore::create(dir.path().join("src"), false).unwrap();
        let objects: Vec<ObjectRef> = (0..4)
            .map(|i| {
                let data = format!("image {i}");
                std::fs::write(dir.path().join(format!("src/{i}.jpg")), &data).unwrap();
                object(&format!("{i}.jpg"), data.as_bytes())
            })
            .collect();
        let target = Flaky { inner: LocalDirStore::create(dir.path().join("bucket"), false).unwrap(), puts: 0.into(), got: Default::default() };
        let retry = RetryPolicy { base_delay: Duration::from_millis(1), max_delay: Duration::from_millis(2), ..RetryPolicy::default() };
        let transfer = Transfer { source: &source, target: &target, concurrency: 1, prefix: "p".into(), keep_uploads: false, retry };
        let run = transfer.run(&objects, None).await.unwrap();
        assert_eq!((run.upload.failed, run.download.failed), (0, 0));
        assert_eq!(run.upload.retries, BTreeMap::from([("throttled".into(), 4)]));
        assert_eq!(run.download.retries, BTreeMap::from([("timeout".into(), 4)]));
        assert_eq!(run.upload.requests, 4, "a retried request is one request");
    }

    #[tokio::test]
    async fn an_unusable_bucket_fails_the_batch_for_a_retry() {
        let dir = tempfile::tempdir().unwrap();
        let source = LocalDirStore::create(dir.path().join("src"), false).unwrap();
        source.put("a.jpg", Bytes::from_static(b"a")).await.unwrap();
        let target = LocalDirStore::create(dir.path().join("bucket"), false).unwrap();
        std::fs::remove_dir(dir.path().join("bucket")).unwrap();
        let transfer = Transfer { source: &source, target: &target, concurrency: 1, prefix: "p".into(), keep_uploads: true, retry: RetryPolicy::none() };
        let failure = transfer.run(&[object("a.jpg", b"a")], None).await.unwrap_err();
        assert_eq!(failure.source.kind, storage::ErrorKind::NoBucket);
        assert_eq!(failure.phase, "upload");
    }
}

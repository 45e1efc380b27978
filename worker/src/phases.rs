//! The timed phases of one batch, as the paper defines them: upload the batch's objects to the
//! platform's storage, download them back and verify every byte. (Inference joins in a later phase.)
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
    /// Failed requests by kind ("not_found", "checksum_mismatch", ...).
    pub errors: BTreeMap<String, u64>,
    /// Retries by the kind of failure that caused them ("throttled", "timeout", ...).
    pub retries: BTreeMap<String, u64>,
}

impl PhaseRun {
    fn new() -> Self {
        Self {
            duration: Duration::ZERO,
            requests: 0,
            failed: 0,
            latency: proto::latency::new_histogram(),
            errors: BTreeMap::new(),
            retries: BTreeMap::new(),
        }
    }

    /// Records one request: its latency (retries and backoff included, as the caller waited) and
    /// the retries it took.
    fn request(&mut self, took: Duration, retries: &[ErrorKind]) {
        self.requests += 1;
        proto::latency::record(&mut self.latency, micros(took));
        for kind in retries {
            *self.retries.entry(kind.as_str().to_owned()).or_insert(0) += 1;
        }
    }

    fn fail(&mut self, kind: &str) {
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

fn micros(d: Duration) -> u64 {
    d.as_micros().min(u128::from(u64::MAX)) as u64
}

impl Transfer<'_> {
    fn upload_key(&self, key: &str) -> String {
        format!("{}/{key}", self.prefix)
    }

    /// Runs the source read, upload and download phases of a batch of `objects`.
    // The stream closures take indices, not references: closures over borrowed items make the
    // future's `Send` proof fail (higher-ranked lifetimes) where an async trait method awaits it.
    pub async fn run(&self, objects: &[ObjectRef]) -> Result<BatchRun, PlatformFailure> {
        let concurrency = self.concurrency.max(1);

        // Source: read the images the worker will upload, verified against the manifest.
        let mut source = PhaseRun::new();
        let started = Instant::now();
        let reads = futures::stream::iter(0..objects.len())
            .map(|i| async move {
                let t = Instant::now();
                let key = &objects[i].key;
                let attempted = self.retry.run(key, || self.source.get(key)).await;
                (i, attempted, t.elapsed())
            })
            .buffered(concurrency)
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
        source.duration = started.elapsed();

        // Upload: the paper's upload time, the wall time of putting the whole batch.
        let mut upload = PhaseRun::new();
        let started = Instant::now();
        let ready = &ready;
        let puts = futures::stream::iter(0..ready.len())
            .map(|j| async move {
                let (i, data) = &ready[j];
                let key = self.upload_key(&objects[*i].key);
                let t = Instant::now();
                let attempted = self.retry.run(&key, || self.target.put(&key, data.clone())).await;
                (*i, attempted, t.elapsed())
            })
            .buffer_unordered(concurrency)
            .collect::<Vec<_>>()
            .await;
        upload.duration = started.elapsed();
        let mut uploaded: Vec<usize> = Vec::with_capacity(ready.len());
        for (i, attempted, took) in puts {
            upload.request(took, &attempted.retries);
            match attempted.result {
                Ok(()) => uploaded.push(i),
                Err(e) if e.kind.is_platform_failure() => return Err(PlatformFailure::new("upload", self.target, e)),
                Err(e) => upload.fail(e.kind.as_str()),
            }
        }

        // Download: get every uploaded object back and verify every byte.
        let mut download = PhaseRun::new();
        let started = Instant::now();
        let gets = futures::stream::iter(uploaded.clone())
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
                (attempted.result.map(|_| verified), attempted.retries, took)
            })
            .buffer_unordered(concurrency)
            .collect::<Vec<_>>()
            .await;
        download.duration = started.elapsed();
        for (result, retries, took) in gets {
            download.request(took, &retries);
            match result {
                Ok(true) => {}
                Ok(false) => download.fail("checksum_mismatch"),
                Err(e) if e.kind.is_platform_failure() => return Err(PlatformFailure::new("download", self.target, e)),
                Err(e) => download.fail(e.kind.as_str()),
            }
        }

        let cleanup_started = Instant::now();
        if !self.keep_uploads {
            // Not timed; a failed delete leaves an object under the run's prefix, nothing worse.
            let deletes = futures::stream::iter(uploaded)
                .map(|i| async move {
                    let key = self.upload_key(&objects[i].key);
                    self.retry.run(&key, || self.target.delete(&key)).await.result
                })
                .buffer_unordered(concurrency)
                .collect::<Vec<_>>()
                .await;
            for e in deletes.into_iter().filter_map(Result::err) {
                tracing::warn!(error = %e, "deleting an uploaded object failed");
            }
        }
        Ok(BatchRun { source, upload, download, cleanup: cleanup_started.elapsed() })
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
        let run = transfer.run(&objects).await.unwrap();
        assert_eq!(run.source.requests, 3);
        assert_eq!(run.source.errors, BTreeMap::from([("checksum_mismatch".into(), 1), ("not_found".into(), 1)]));
        assert_eq!((run.upload.requests, run.upload.failed, run.download.requests, run.download.failed), (1, 0, 1, 0));
        assert_eq!(run.upload.latency.len(), 1);
        assert!(target.list("runs/").await.unwrap().is_empty(), "uploads are cleaned up");
    }

    #[tokio::test]
    async fn an_unusable_bucket_fails_the_batch_for_a_retry() {
        let dir = tempfile::tempdir().unwrap();
        let source = LocalDirStore::create(dir.path().join("src"), false).unwrap();
        source.put("a.jpg", Bytes::from_static(b"a")).await.unwrap();
        let target = LocalDirStore::create(dir.path().join("bucket"), false).unwrap();
        std::fs::remove_dir(dir.path().join("bucket")).unwrap();
        let transfer = Transfer { source: &source, target: &target, concurrency: 1, prefix: "p".into(), keep_uploads: true, retry: RetryPolicy::none() };
        let failure = transfer.run(&[object("a.jpg", b"a")]).await.unwrap_err();
        assert_eq!(failure.source.kind, storage::ErrorKind::NoBucket);
        assert_eq!(failure.phase, "upload");
    }
}

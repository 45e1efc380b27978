//! The timed storage phases of one batch, as the paper defines them: upload the batch's objects to
//! the platform's storage, download them back and verify every byte. When the platform has a model
//! endpoint, the runner then hands the images downloaded intact to the inference phase
//! (`inference.rs`); what the phases measure is in `batch.rs`.
//!
//! Objects of a batch are transferred with a bounded number of requests in flight; a phase's time is
//! the wall time of the whole batch. Each request's latency goes into the phase's histogram; a failed
//! request counts as an error of its kind and the batch goes on, unless the failure says the platform
//! itself is unusable (bad credentials, missing bucket, unreachable), which ends the batch so the job
//! can be returned to the queue.

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use proto::v1::ObjectRef;
use sha2::{Digest, Sha256};
use storage::{RetryPolicy, Storage};

use crate::batch::{BatchRun, Clock, PhaseRun, PlatformFailure};

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

impl Transfer<'_> {
    fn upload_key(&self, key: &str) -> String {
        format!("{}/{key}", self.prefix)
    }

    /// Runs the source read, upload and download phases of a batch of `objects` and deletes the
    /// uploads unless told to keep them. With `keep_images`, also returns the images downloaded intact
    /// (index into `objects`, bytes), for the inference phase; the run's `inference` is `None`.
    pub async fn run(&self, objects: &[ObjectRef], keep_images: bool) -> Result<(BatchRun, Vec<(usize, Bytes)>), PlatformFailure> {
        let (source, ready) = self.read_source(objects).await?;
        let (upload, uploaded) = self.upload(objects, &ready).await?;
        crate::crash::point("uploaded");
        drop(ready);
        let (download, downloaded) = self.download_keeping(objects, &uploaded, keep_images).await;
        // The uploads go before inference, so that an endpoint failure leaves nothing behind.
        let cleanup = self.clean_up(objects, &uploaded).await;
        let download = download?;
        crate::crash::point("downloaded");
        Ok((BatchRun { source, upload, download, inference: None, cleanup }, downloaded))
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
                Err(e) if e.kind.is_platform_failure() => return Err(PlatformFailure::new("reading the dataset", self.source.describe(), e)),
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
                Err(e) if e.kind.is_platform_failure() => return Err(PlatformFailure::new("upload", self.target.describe(), e)),
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
                Err(e) if e.kind.is_platform_failure() => return (Err(PlatformFailure::new("download", self.target.describe(), e)), Vec::new()),
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
    use std::collections::BTreeMap;
    use storage::{ErrorKind, LocalDirStore, StorageError};

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
        let (run, _) = transfer.run(&objects, false).await.unwrap();
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
        let (run, _) = transfer.run(&objects, false).await.unwrap();
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
        let failure = transfer.run(&[object("a.jpg", b"a")], false).await.unwrap_err();
        assert_eq!(failure.source.kind, storage::ErrorKind::NoBucket);
        assert_eq!(failure.phase, "upload");
    }
}

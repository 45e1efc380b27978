//! Datasets in buckets: copy a dataset into a bucket or container (seeding), build a manifest by
//! listing and hashing a store's objects, and remove what a run's workers left behind.
//!
//! Every request goes through a [`RetryPolicy`]; objects move `concurrency` at a time.

use futures::{StreamExt, TryStreamExt};
use indicatif::ProgressBar;
use storage::{ErrorKind, RetryPolicy, Storage};

use crate::manifest::{Entry, Manifest, is_image_key, sha256_hex};

/// Where worker uploads of run `run_id` live in a platform's store (see the worker's phases).
pub fn run_prefix(run_id: &str) -> String {
    format!("cloudbench/{run_id}/")
}

/// What a seeding did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Seeded {
    pub uploaded: u64,
    /// Objects already in the target with the manifest's size, left as they were.
    pub skipped: u64,
    pub bytes: u64,
}

/// Copies every object of `manifest` from `source` to `target` under the same key, checking each
/// against the manifest's checksum first. Objects the target already holds with the right size are
/// skipped, so an interrupted seeding resumes where it stopped.
pub async fn seed(
    source: &dyn Storage,
    target: &dyn Storage,
    manifest: &Manifest,
    concurrency: usize,
    retry: RetryPolicy,
    progress: &ProgressBar,
) -> Result<Seeded, String> {
    let present: std::collections::HashMap<String, u64> =
        retry.run("listing the target", || target.list("")).await.result.map_err(|e| e.to_string())?.into_iter().map(|o| (o.key, o.size)).collect();
    progress.set_length(manifest.objects.len() as u64);
    let objects = &manifest.objects;
    let present = &present;
    let results: Vec<Seeded> = futures::stream::iter(0..objects.len())
        .map(|i| async move {
            let entry = &objects[i];
            let done = if present.get(&entry.key) == Some(&entry.size) {
                Seeded { skipped: 1, ..Seeded::default() }
            } else {
                let data = retry.run(&entry.key, || source.get(&entry.key)).await.result.map_err(|e| e.to_string())?;
                if data.len() as u64 != entry.size || sha256_hex(&data) != entry.sha256 {
                    return Err(format!("{} in {} does not match the manifest's size and checksum", entry.key, source.describe()));
                }
                retry.run(&entry.key, || target.put(&entry.key, data.clone())).await.result.map_err(|e| e.to_string())?;
                Seeded { uploaded: 1, bytes: entry.size, skipped: 0 }
            };
            progress.inc(1);
            Ok::<_, String>(done)
        })
        .buffer_unordered(concurrency.max(1))
        .try_collect()
        .await?;
    progress.finish_and_clear();
    Ok(results.into_iter().fold(Seeded::default(), |a, b| Seeded {
        uploaded: a.uploaded + b.uploaded,
        skipped: a.skipped + b.skipped,
        bytes: a.bytes + b.bytes,
    }))
}

/// Builds a manifest of the JPEG and PNG objects of `store` (paged listing), downloading each to
/// hash it.
pub async fn scan(store: &dyn Storage, concurrency: usize, retry: RetryPolicy, progress: &ProgressBar) -> Result<Manifest, String> {
    let listed = retry.run("listing", || store.list("")).await.result.map_err(|e| e.to_string())?;
    let images: Vec<_> = listed.into_iter().filter(|o| is_image_key(&o.key)).collect();
    if images.is_empty() {
        return Err(format!("{}: no .jpg, .jpeg or .png objects found", store.describe()));
    }
    progress.set_length(images.len() as u64);
    let images = &images;
    let entries: Vec<Entry> = futures::stream::iter(0..images.len())
        .map(|i| async move {
            let key = &images[i].key;
            let data = retry.run(key, || store.get(key)).await.result.map_err(|e| e.to_string())?;
            let sha256 = tokio::task::spawn_blocking(move || sha256_hex(&data)).await.map_err(|e| e.to_string())?;
            progress.inc(1);
            Ok::<_, String>(Entry { key: key.clone(), size: images[i].size, sha256 })
        })
        .buffer_unordered(concurrency.max(1))
        .try_collect()
        .await?;
    progress.finish_and_clear();
    Manifest::new(store.describe(), entries)
}

/// Deletes everything workers uploaded for `run_id` and left behind (a worker killed mid-batch, or
/// `keep_uploads`). Returns how many objects were deleted.
pub async fn cleanup(store: &dyn Storage, run_id: &str, concurrency: usize, retry: RetryPolicy) -> Result<u64, String> {
    let prefix = run_prefix(run_id);
    let listed = retry.run("listing", || store.list(&prefix)).await.result.map_err(|e| e.to_string())?;
    let listed = &listed;
    futures::stream::iter(0..listed.len())
        .map(|i| async move {
            let key = &listed[i].key;
            match retry.run(key, || store.delete(key)).await.result {
                Err(e) if e.kind != ErrorKind::NotFound => Err(e.to_string()),
                _ => Ok(()),
            }
        })
        .buffer_unordered(concurrency.max(1))
        .try_collect::<Vec<()>>()
        .await?;
    Ok(listed.len() as u64)
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use storage::LocalDirStore;

    use super::*;

    #[tokio::test]
    async fn seeding_copies_checks_and_resumes() {
        let dir = tempfile::tempdir().unwrap();
        let source = LocalDirStore::create(dir.path().join("src"), false).unwrap();
        let target = LocalDirStore::create(dir.path().join("bucket"), false).unwrap();
        for (key, data) in [("a.jpg", &b"aa"[..]), ("sub/b.png", b"bbb")] {
            source.put(key, Bytes::copy_from_slice(data)).await.unwrap();
        }
        let manifest = scan(&source, 4, RetryPolicy::none(), &ProgressBar::hidden()).await.unwrap();
        assert_eq!(manifest.objects.len(), 2);
        let first = seed(&source, &target, &manifest, 4, RetryPolicy::none(), &ProgressBar::hidden()).await.unwrap();
        assert_eq!(first, Seeded { uploaded: 2, skipped: 0, bytes: 5 });
        let again = seed(&source, &target, &manifest, 4, RetryPolicy::none(), &ProgressBar::hidden()).await.unwrap();
        assert_eq!(again, Seeded { uploaded: 0, skipped: 2, bytes: 0 });
        assert_eq!(scan(&target, 2, RetryPolicy::none(), &ProgressBar::hidden()).await.unwrap().objects, manifest.objects);

        source.put("a.jpg", Bytes::from_static(b"changed")).await.unwrap();
        target.delete("a.jpg").await.unwrap();
        let err = seed(&source, &target, &manifest, 4, RetryPolicy::none(), &ProgressBar::hidden()).await.unwrap_err();
        assert!(err.contains("a.jpg") && err.contains("checksum"), "{err}");
    }

    #[tokio::test]
    async fn cleanup_removes_only_the_runs_uploads() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalDirStore::create(dir.path(), false).unwrap();
        for key in ["cloudbench/r1/0/aws/3/a.jpg", "cloudbench/r1/1/aws/0/b.jpg", "cloudbench/r10/0/aws/0/c.jpg", "coco/d.jpg"] {
            store.put(key, Bytes::from_static(b"x")).await.unwrap();
        }
        assert_eq!(cleanup(&store, "r1", 4, RetryPolicy::none()).await.unwrap(), 2);
        let left: Vec<_> = store.list("").await.unwrap().into_iter().map(|o| o.key).collect();
        assert_eq!(left, ["cloudbench/r10/0/aws/0/c.jpg", "coco/d.jpg"]);
    }
}

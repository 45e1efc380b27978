//! A directory acting as a bucket: keys map to files under the root.

use std::io::ErrorKind as IoKind;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use bytes::Bytes;

use crate::{ErrorKind, ObjectInfo, Storage, StorageError};

/// Stores objects as files under a root directory.
///
/// Writes go to a temporary file renamed into place, so a reader sees the old or the new object, never
/// a partial one. With `durable`, every write is flushed to disk before `put` returns, as an object store
/// acknowledges only durable writes; without it the page cache absorbs writes.
#[derive(Debug)]
pub struct LocalDirStore {
    root: PathBuf,
    durable: bool,
    /// Distinguishes temporary files of concurrent writers to the same key.
    tmp_seq: AtomicU64,
}

impl LocalDirStore {
    /// Opens a store rooted at `root`, which must exist and be a directory.
    pub fn open(root: impl Into<PathBuf>, durable: bool) -> Result<Self, StorageError> {
        let root = root.into();
        match std::fs::metadata(&root) {
            Ok(m) if m.is_dir() => Ok(Self { root, durable, tmp_seq: AtomicU64::new(0) }),
            Ok(_) => Err(StorageError::new(ErrorKind::NoBucket, format!("{} is not a directory", root.display()))),
            Err(e) => Err(StorageError::new(ErrorKind::NoBucket, format!("store directory {}: {e}", root.display()))),
        }
    }

    /// Opens a store at `root`, creating the directory when it is missing.
    pub fn create(root: impl Into<PathBuf>, durable: bool) -> Result<Self, StorageError> {
        let root = root.into();
        std::fs::create_dir_all(&root).map_err(|e| {
            StorageError::new(ErrorKind::NoBucket, format!("creating store directory {}: {e}", root.display()))
        })?;
        Self::open(root, durable)
    }

    /// Root directory of the store.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Maps a failure to `NoBucket` when the root itself is gone, as a bucket deleted under a client.
    async fn check_root(&self, error: StorageError) -> StorageError {
        match tokio::fs::metadata(&self.root).await {
            Ok(m) if m.is_dir() => error,
            _ => StorageError::new(ErrorKind::NoBucket, format!("store directory {} is missing", self.root.display())),
        }
    }

    fn path_of(&self, key: &str) -> Result<PathBuf, StorageError> {
        crate::keys::check_key(key)?;
        Ok(self.root.join(key))
    }
}

fn io_error(op: &str, key: &str, e: std::io::Error) -> StorageError {
    let kind = match e.kind() {
        IoKind::NotFound => ErrorKind::NotFound,
        IoKind::PermissionDenied => ErrorKind::Unauthorized,
        IoKind::TimedOut => ErrorKind::Timeout,
        _ => ErrorKind::Other,
    };
    StorageError::new(kind, format!("{op} {key:?}: {e}"))
}

#[async_trait]
impl Storage for LocalDirStore {
    fn describe(&self) -> String {
        format!("local dir {}{}", self.root.display(), if self.durable { " (fsync)" } else { "" })
    }

    async fn put(&self, key: &str, data: Bytes) -> Result<(), StorageError> {
        let path = self.path_of(key)?;
        // Only directories below the root are created: a missing root is a missing bucket.
        if !tokio::fs::metadata(&self.root).await.is_ok_and(|m| m.is_dir()) {
            return Err(self.check_root(StorageError::new(ErrorKind::Other, "")).await);
        }
        let tmp = path.with_extension(format!("tmp-{}-{}", std::process::id(), self.tmp_seq.fetch_add(1, Ordering::Relaxed)));
        let durable = self.durable;
        let owned_key = key.to_owned();
        tokio::task::spawn_blocking(move || {
            use std::io::Write;
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            let mut file = std::fs::File::create(&tmp)?;
            file.write_all(&data)?;
            if durable {
                file.sync_all()?;
            }
            drop(file);
            std::fs::rename(&tmp, &path).inspect_err(|_| {
                let _ = std::fs::remove_file(&tmp);
            })
        })
        .await
        .map_err(|e| StorageError::new(ErrorKind::Other, format!("put {owned_key:?}: {e}")))?
        .map_err(|e| io_error("put", key, e))
    }

    async fn get(&self, key: &str) -> Result<Bytes, StorageError> {
        let path = self.path_of(key)?;
        match tokio::fs::read(&path).await {
            Ok(data) => Ok(Bytes::from(data)),
            Err(e) => Err(self.check_root(io_error("get", key, e)).await),
        }
    }

    async fn delete(&self, key: &str) -> Result<(), StorageError> {
        let path = self.path_of(key)?;
        match tokio::fs::remove_file(&path).await {
            Err(e) if e.kind() != IoKind::NotFound => Err(io_error("delete", key, e)),
            _ => Ok(()),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StorageError> {
        let root = self.root.clone();
        let owned_prefix = prefix.to_owned();
        tokio::task::spawn_blocking(move || {
            let prefix = owned_prefix;
            let mut found = Vec::new();
            let mut dirs = vec![root.clone()];
            while let Some(dir) = dirs.pop() {
                for entry in std::fs::read_dir(&dir)? {
                    let entry = entry?;
                    let kind = entry.file_type()?;
                    let path = entry.path();
                    if kind.is_dir() {
                        dirs.push(path);
                    } else if kind.is_file() {
                        let key = path.strip_prefix(&root).expect("walked under root");
                        let Some(key) = key.to_str().map(|k| k.replace('\\', "/")) else { continue };
                        // Temporary files of writers in progress are not objects yet.
                        if key.starts_with(&prefix) && !key.contains(".tmp-") {
                            found.push(ObjectInfo { key, size: entry.metadata()?.len() });
                        }
                    }
                }
            }
            found.sort_by(|a, b| a.key.cmp(&b.key));
            Ok(found)
        })
        .await
        .map_err(|e| StorageError::new(ErrorKind::Other, format!("list {prefix:?}: {e}")))?
        .map_err(|e| io_error("list", prefix, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn local_dir_store_passes_the_conformance_suite() {
        let dir = tempfile::tempdir().unwrap();
        for durable in [false, true] {
            let store = LocalDirStore::create(dir.path().join(durable.to_string()), durable).unwrap();
            crate::conformance::run_all(&store, "conformance").await;
        }
    }

    #[tokio::test]
    async fn keys_cannot_escape_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalDirStore::open(dir.path(), false).unwrap();
        for key in ["../x", "/etc/passwd", "a/../../b", "", "dir/"] {
            let err = store.put(key, Bytes::from_static(b"x")).await.unwrap_err();
            assert_eq!(err.kind, ErrorKind::InvalidKey, "{key:?}");
        }
    }

    #[tokio::test]
    async fn a_missing_root_is_a_missing_bucket() {
        let err = LocalDirStore::open("/nonexistent/cloudbench", false).unwrap_err();
        assert_eq!(err.kind, ErrorKind::NoBucket);
        let dir = tempfile::tempdir().unwrap();
        let store = LocalDirStore::create(dir.path().join("bucket"), false).unwrap();
        std::fs::remove_dir(dir.path().join("bucket")).unwrap();
        assert_eq!(store.put("a", Bytes::new()).await.unwrap_err().kind, ErrorKind::NoBucket);
        assert_eq!(store.get("a").await.unwrap_err().kind, ErrorKind::NoBucket);
        assert!(!dir.path().join("bucket").exists(), "the bucket is not recreated");
    }
}

//! Object storage as the worker sees it: put, get, delete and list objects by key.
//!
//! [`Storage`] is the one trait every backend implements: [`LocalDirStore`] (a directory acting as a
//! bucket), `S3Store`, `AzureStore` and `GcsStore` (features `s3`, `azure` and `gcs`, on by default); [`StorageConfig`] names one in a config file or a URL, and
//! [`RetryPolicy`] retries requests with backoff, reporting every retry. The worker times these calls
//! for its upload and download phases, and also reads a batch's source images through a [`Storage`],
//! so a dataset can live in a folder or in a bucket alike.
//! [`conformance`] holds the assertions every implementation must pass, [`testing`] the test
//! servers' addresses and keys every crate's tests use. A failed request is a
//! [`StorageError`] of an [`ErrorKind`], the `request` crate's one error type for every cloud request.

#[cfg(feature = "azure")]
mod azure;
mod config;
pub mod conformance;
#[cfg(feature = "gcs")]
mod gcs;
pub mod keys;
mod local;
mod retry;
#[cfg(feature = "s3")]
mod s3;
#[cfg(feature = "azure")]
pub mod sas;
pub mod testing;
#[cfg(feature = "tls")]
pub mod tls;

use async_trait::async_trait;
use bytes::Bytes;

#[cfg(feature = "azure")]
pub use azure::{AzureAuth, AzureConfig, AzureStore};
pub use config::StorageConfig;
#[cfg(feature = "gcs")]
pub use gcs::{GcsConfig, GcsStore};
pub use local::LocalDirStore;
pub use retry::{Attempted, RetryPolicy};
#[cfg(feature = "s3")]
pub use s3::{S3Config, S3Store};
#[cfg(feature = "s3")]
pub use request::aws::StaticCredentials;
pub use request::{Secret, read_secret, secret_from};
// The kinds of failure are every cloud request's (the `request` crate's), named here as a store's.
pub use request::{ErrorKind, RequestError as StorageError, error_chain};

/// An object found by [`Storage::list`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    pub key: String,
    pub size: u64,
}

/// An object store addressed by `/`-separated keys.
#[async_trait]
pub trait Storage: Send + Sync {
    /// Describes the store for logs and reports ("local dir /data/bucket"), without secrets.
    fn describe(&self) -> String;

    /// Checks that the store can be used at all (the bucket exists, the credentials are accepted), so
    /// a misconfigured platform is one clear error at start rather than a failure per object.
    async fn probe(&self) -> Result<(), StorageError> {
        Ok(())
    }

    /// Stores `data` under `key`, replacing any previous object; readers never see a partial object.
    async fn put(&self, key: &str, data: Bytes) -> Result<(), StorageError>;

    /// Returns the whole object stored under `key`.
    async fn get(&self, key: &str) -> Result<Bytes, StorageError>;

    /// Removes the object under `key`; removing a missing object is not an error.
    async fn delete(&self, key: &str) -> Result<(), StorageError>;

    /// Lists every object whose key starts with `prefix`, sorted by key.
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StorageError>;
}

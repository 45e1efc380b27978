//! Object storage as the worker sees it: put, get, delete and list objects by key.
//!
//! [`Storage`] is the one trait every backend implements: [`LocalDirStore`] (a directory acting as a
//! bucket), `S3Store` and `AzureStore` (features `s3` and `azure`, on by default); [`StorageConfig`] names one in a config file or a URL, and
//! [`RetryPolicy`] retries requests with backoff, reporting every retry. The worker times these calls
//! for its upload and download phases, and also reads a batch's source images through a [`Storage`],
//! so a dataset can live in a folder or in a bucket alike.
//! [`conformance`] holds the assertions every implementation must pass.

#[cfg(feature = "azure")]
mod azure;
mod config;
pub mod conformance;
pub mod keys;
mod local;
mod retry;
#[cfg(feature = "s3")]
mod s3;
#[cfg(feature = "azure")]
pub mod sas;
mod secret;
#[cfg(feature = "tls")]
pub mod tls;

use async_trait::async_trait;
use bytes::Bytes;

#[cfg(feature = "azure")]
pub use azure::{AzureAuth, AzureConfig, AzureStore};
pub use config::StorageConfig;
pub use local::LocalDirStore;
pub use retry::{Attempted, RetryPolicy};
#[cfg(feature = "s3")]
pub use s3::{AwsAccess, S3Config, S3Store, StaticCredentials, aws_sdk_config};
pub use secret::{Secret, read_secret, secret_from};

/// What went wrong with a storage (or model endpoint) request, in terms the caller can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The object does not exist: counted against the batch, the job goes on.
    NotFound,
    /// The key cannot be stored (empty, absolute, escaping the prefix).
    InvalidKey,
    /// The request was refused for lack of rights: the platform is misconfigured, the job is returned.
    Unauthorized,
    /// The bucket or container itself is missing: the platform is misconfigured, the job is returned.
    NoBucket,
    /// The service asked us to slow down: retried with backoff.
    Throttled,
    /// The request did not finish in time: retried with backoff.
    Timeout,
    /// The service could not be reached or answered with a server error: retried, then the job returned.
    Unavailable,
    /// The model endpoint does not exist (HTTP 404, an unknown SageMaker endpoint): the platform is
    /// misconfigured, the job is returned.
    NoEndpoint,
    /// The service refused this one request (a 4xx for its body): counted against the batch.
    Rejected,
    /// The service answered, but not with a valid answer: counted against the batch.
    BadResponse,
    /// Anything else: counted against the batch.
    Other,
}

impl ErrorKind {
    /// Short machine-readable name used in metrics ("not_found", "throttled", ...).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "not_found",
            ErrorKind::InvalidKey => "invalid_key",
            ErrorKind::Unauthorized => "unauthorized",
            ErrorKind::NoBucket => "no_bucket",
            ErrorKind::Throttled => "throttled",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::NoEndpoint => "no_endpoint",
            ErrorKind::Rejected => "rejected",
            ErrorKind::BadResponse => "bad_response",
            ErrorKind::Other => "other",
        }
    }

    /// True when the whole platform is unusable, so the job should go back to the queue rather than
    /// be recorded with per-object errors.
    pub fn is_platform_failure(self) -> bool {
        matches!(self, ErrorKind::Unauthorized | ErrorKind::NoBucket | ErrorKind::NoEndpoint | ErrorKind::Unavailable)
    }
}

/// A failed storage request. The message names the object and never carries a secret.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct StorageError {
    pub kind: ErrorKind,
    pub message: String,
}

impl StorageError {
    /// Builds an error of `kind` with a message naming what failed.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self { kind, message: message.into() }
    }
}

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

//! Amazon S3 and S3-compatible servers, through `aws-sdk-s3`.
//!
//! Credentials come from the standard chain (environment, shared profile, web identity on Kubernetes,
//! instance role on EC2) unless given in code. The SDK's own retries are off: the caller retries
//! through [`crate::RetryPolicy`] and counts every retry. Objects above `multipart_threshold` are put
//! with a multipart upload; every get asks for the first `part_size` bytes and, when the object is
//! larger than `multipart_threshold`, is
//! fetched again in parallel ranges of `part_size`.

use async_trait::async_trait;
use aws_sdk_s3::config::ResponseChecksumValidation;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use bytes::{Bytes, BytesMut};
use futures::{StreamExt, TryStreamExt};
use request::aws::{AwsAccess, Failure, StaticCredentials, aws_sdk_config, signing_region};
use serde::Deserialize;

use crate::keys::KeySpace;
use crate::{ErrorKind, ObjectInfo, Storage, StorageError};

const MIB: u64 = 1024 * 1024;

/// Settings of an S3 bucket as a store. Credentials are never part of a config file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Config {
    pub bucket: String,
    /// Every key of the store lives under this prefix.
    #[serde(default)]
    pub prefix: String,
    /// Region; when absent, the standard chain's (`AWS_REGION`, profile, instance metadata).
    pub region: Option<String>,
    /// Endpoint of an S3-compatible server (MinIO, s3s-fs); also read from `AWS_ENDPOINT_URL`.
    pub endpoint_url: Option<String>,
    /// Path-style addressing (`http://host/bucket/key`), which most S3-compatible servers need.
    #[serde(default)]
    pub path_style: bool,
    /// Named profile of the shared config and credentials files.
    pub profile: Option<String>,
    /// Objects larger than this are uploaded in parts.
    #[serde(default = "S3Config::default_multipart_threshold")]
    pub multipart_threshold: u64,
    /// Part size of multipart uploads and of ranged downloads (S3's minimum part is 5 MiB).
    #[serde(default = "S3Config::default_part_size")]
    pub part_size: u64,
    /// Parts in flight for one object.
    #[serde(default = "S3Config::default_part_concurrency")]
    pub part_concurrency: usize,
    /// Keys per page of a listing (S3's default and maximum is 1,000).
    pub list_page_size: Option<i32>,
    /// Static credentials given in code (tests, tools); config files use the standard chain instead.
    #[serde(skip)]
    pub credentials: Option<StaticCredentials>,
}

impl S3Config {
    fn default_multipart_threshold() -> u64 {
        16 * MIB
    }
    fn default_part_size() -> u64 {
        8 * MIB
    }
    fn default_part_concurrency() -> usize {
        4
    }

    /// A config for `bucket` with every other setting at its default.
    pub fn new(bucket: impl Into<String>) -> Self {
        Self {
            bucket: bucket.into(),
            prefix: String::new(),
            region: None,
            endpoint_url: None,
            path_style: false,
            profile: None,
            multipart_threshold: Self::default_multipart_threshold(),
            part_size: Self::default_part_size(),
            part_concurrency: Self::default_part_concurrency(),
            list_page_size: None,
            credentials: None,
        }
    }
}

/// A bucket (and optional key prefix) on S3 or an S3-compatible server.
#[derive(Debug, Clone)]
pub struct S3Store {
    client: aws_sdk_s3::Client,
    config: S3Config,
    keys: KeySpace,
}

impl S3Store {
    /// Builds the client. Nothing is sent until the first request (see [`Storage::probe`]).
    pub async fn connect(config: S3Config) -> Result<Self, StorageError> {
        if config.bucket.is_empty() {
            return Err(StorageError::new(ErrorKind::NoBucket, "s3: no bucket given"));
        }
        if config.part_size < 5 * MIB || config.part_concurrency == 0 {
            return Err(StorageError::new(ErrorKind::Other, "s3: part_size must be at least 5 MiB and part_concurrency at least 1"));
        }
        let shared = aws_sdk_config(AwsAccess {
            region: config.region.as_deref(),
            profile: config.profile.as_deref(),
            endpoint_url: config.endpoint_url.as_deref(),
            credentials: config.credentials.as_ref(),
        })
        .await;
        // The worker verifies every object against the manifest's SHA-256 end to end; S3's own
        // response checksums would hash every byte a second time (and make some servers stream
        // their answers in small writes).
        let mut builder = aws_sdk_s3::config::Builder::from(&shared)
            .force_path_style(config.path_style)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
        let Some(region) = signing_region(&shared) else {
            return Err(StorageError::new(ErrorKind::Other, format!("s3 bucket {}: no region: set region in the config or AWS_REGION", config.bucket)));
        };
        builder = builder.region(region);
        let keys = KeySpace::new(&config.prefix);
        Ok(Self { client: aws_sdk_s3::Client::from_conf(builder.build()), config, keys })
    }

    fn name(&self, key: &str) -> String {
        format!("s3://{}/{key}", self.config.bucket)
    }

    /// Creates the bucket (seeding a dataset, tests); an existing bucket of ours is fine.
    pub async fn create_bucket(&self) -> Result<(), StorageError> {
        match self.client.create_bucket().bucket(&self.config.bucket).send().await {
            Ok(_) => Ok(()),
            Err(e) if matches!(e.code(), Some("BucketAlreadyOwnedByYou")) => Ok(()),
            Err(e) => Err(s3_error("create", &format!("s3://{}", self.config.bucket), e)),
        }
    }

    /// Deletes every object under the store's prefix, then the bucket itself (tests, cleanup).
    pub async fn delete_bucket(&self) -> Result<(), StorageError> {
        for object in self.list("").await? {
            self.delete(&object.key).await?;
        }
        self.client
            .delete_bucket()
            .bucket(&self.config.bucket)
            .send()
            .await
            .map(drop)
            .map_err(|e| s3_error("delete", &format!("s3://{}", self.config.bucket), e))
    }

    async fn put_multipart(&self, key: &str, data: Bytes) -> Result<(), StorageError> {
        let bucket = &self.config.bucket;
        let created = self
            .client
            .create_multipart_upload()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| s3_error("put", &self.name(key), e))?;
        let upload_id = created
            .upload_id()
            .ok_or_else(|| StorageError::new(ErrorKind::Other, format!("put {}: no upload id in the answer", self.name(key))))?
            .to_owned();
        let part_size = self.config.part_size as usize;
        let parts = data.len().div_ceil(part_size);
        let uploaded: Result<Vec<CompletedPart>, StorageError> = futures::stream::iter(0..parts)
            .map(|i| {
                let body = data.slice(i * part_size..((i + 1) * part_size).min(data.len()));
                let upload_id = &upload_id;
                async move {
                    let number = i as i32 + 1;
                    let part = self
                        .client
                        .upload_part()
                        .bucket(bucket)
                        .key(key)
                        .upload_id(upload_id)
                        .part_number(number)
                        .content_length(body.len() as i64)
                        .body(ByteStream::from(body))
                        .send()
                        .await
                        .map_err(|e| s3_error(&format!("put part {number} of"), &self.name(key), e))?;
                    Ok(CompletedPart::builder().set_e_tag(part.e_tag().map(str::to_owned)).part_number(number).build())
                }
            })
            .buffered(self.config.part_concurrency)
            .try_collect()
            .await;
        let completed = match uploaded {
            Ok(parts) => {
                self.client
                    .complete_multipart_upload()
                    .bucket(bucket)
                    .key(key)
                    .upload_id(&upload_id)
                    .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
                    .send()
                    .await
                    .map(drop)
                    .map_err(|e| s3_error("complete upload of", &self.name(key), e))
            }
            Err(e) => Err(e),
        };
        if completed.is_err() {
            // Parts of an abandoned upload are billed until aborted.
            let _ = self.client.abort_multipart_upload().bucket(bucket).key(key).upload_id(&upload_id).send().await;
        }
        completed
    }

    async fn get_range(&self, key: &str, start: u64, end: u64, etag: Option<&str>) -> Result<Bytes, StorageError> {
        let out = self
            .client
            .get_object()
            .bucket(&self.config.bucket)
            .key(key)
            .range(format!("bytes={start}-{end}"))
            .set_if_match(etag.map(str::to_owned))
            .send()
            .await
            .map_err(|e| s3_error("get", &self.name(key), e))?;
        read_body(out.body, &self.name(key)).await
    }
}

async fn read_body(body: ByteStream, name: &str) -> Result<Bytes, StorageError> {
    body.collect()
        .await
        .map(|data| data.into_bytes())
        .map_err(|e| StorageError::new(ErrorKind::Unavailable, format!("get {name}: body cut short: {}", DisplayErrorContext(&e))))
}

/// Maps an SDK failure to what the caller can act on; the message names the object, never a secret.
fn s3_error<E>(op: &str, name: &str, err: SdkError<E, aws_smithy_runtime_api::http::Response>) -> StorageError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let status = err.raw_response().map(|r| r.status().as_u16());
    let code = err.code().map(str::to_owned);
    let kind = request::aws::error_kind(&err, |failure| match failure {
        Failure::Unbuilt(why) => if why.contains("credentials") { ErrorKind::Unauthorized } else { ErrorKind::Other },
        Failure::Answered { code, status, .. } => match (code, status) {
            (Some("NoSuchBucket"), _) => ErrorKind::NoBucket,
            (Some("NoSuchKey" | "NotFound"), _) | (_, Some(404)) => ErrorKind::NotFound,
            (Some("AccessDenied" | "InvalidAccessKeyId" | "SignatureDoesNotMatch" | "ExpiredToken" | "InvalidToken"), _) | (_, Some(401 | 403)) => {
                ErrorKind::Unauthorized
            }
            (Some("SlowDown" | "Throttling" | "ThrottlingException" | "RequestLimitExceeded"), _) | (_, Some(429 | 503)) => ErrorKind::Throttled,
            (Some("RequestTimeout"), _) | (_, Some(408 | 504)) => ErrorKind::Timeout,
            (_, Some(s)) if s >= 500 => ErrorKind::Unavailable,
            _ => ErrorKind::Other,
        },
    });
    let detail = match (code, status) {
        (Some(code), _) => match err.message() {
            Some(message) => format!("{code}: {message}"),
            None => code,
        },
        (None, Some(status @ (401 | 403))) => format!("HTTP {status}: access denied (check the credentials and the bucket policy)"),
        (None, Some(status)) => format!("HTTP {status}"),
        (None, None) => format!("{}", DisplayErrorContext(&err)),
    };
    StorageError::new(kind, format!("{op} {name}: {}", crate::keys::scrub(&detail)))
}

#[async_trait]
impl Storage for S3Store {
    fn describe(&self) -> String {
        let endpoint = self.config.endpoint_url.as_deref().map(|u| format!(" at {u}")).unwrap_or_default();
        format!("s3 bucket {}{}{endpoint}", self.config.bucket, if self.keys.prefix().is_empty() { String::new() } else { format!(" prefix {}", self.keys.prefix()) })
    }

    async fn probe(&self) -> Result<(), StorageError> {
        self.client
            .head_bucket()
            .bucket(&self.config.bucket)
            .send()
            .await
            .map(drop)
            .map_err(|e| match s3_error("open", &format!("s3://{}", self.config.bucket), e) {
                // HEAD answers carry no error code: a 404 on the bucket is a missing bucket.
                e if e.kind == ErrorKind::NotFound => StorageError::new(ErrorKind::NoBucket, format!("bucket {} does not exist", self.config.bucket)),
                e => e,
            })
    }

    async fn put(&self, key: &str, data: Bytes) -> Result<(), StorageError> {
        let key = self.keys.full(key)?;
        if data.len() as u64 > self.config.multipart_threshold {
            return self.put_multipart(&key, data).await;
        }
        self.client
            .put_object()
            .bucket(&self.config.bucket)
            .key(&key)
            .content_length(data.len() as i64)
            .body(ByteStream::from(data))
            .send()
            .await
            .map(drop)
            .map_err(|e| s3_error("put", &self.name(&key), e))
    }

    async fn get(&self, key: &str) -> Result<Bytes, StorageError> {
        let key = self.keys.full(key)?;
        let out = self
            .client
            .get_object()
            .bucket(&self.config.bucket)
            .key(&key)
            .send()
            .await
            .map_err(|e| s3_error("get", &self.name(&key), e))?;
        let size = out.content_length().unwrap_or(0).max(0) as u64;
        if size <= self.config.multipart_threshold {
            return read_body(out.body, &self.name(&key)).await;
        }
        // A large object: drop this stream and fetch it in parallel ranges, pinned to the version
        // the first answer described.
        let etag = out.e_tag().map(str::to_owned);
        drop(out);
        let part = self.config.part_size;
        let ranges: Vec<(u64, u64)> = (0..size.div_ceil(part)).map(|i| (i * part, ((i + 1) * part).min(size) - 1)).collect();
        let parts: Vec<Bytes> = futures::stream::iter(ranges)
            .map(|(start, end)| {
                let (key, etag) = (&key, etag.as_deref());
                async move { self.get_range(key, start, end, etag).await }
            })
            .buffered(self.config.part_concurrency)
            .try_collect()
            .await?;
        let mut whole = BytesMut::with_capacity(size as usize);
        for part in parts {
            whole.extend_from_slice(&part);
        }
        if whole.len() as u64 != size {
            return Err(StorageError::new(ErrorKind::Unavailable, format!("get {}: got {} of {size} bytes", self.name(&key), whole.len())));
        }
        Ok(whole.freeze())
    }

    async fn delete(&self, key: &str) -> Result<(), StorageError> {
        let key = self.keys.full(key)?;
        self.client
            .delete_object()
            .bucket(&self.config.bucket)
            .key(&key)
            .send()
            .await
            .map(drop)
            .map_err(|e| s3_error("delete", &self.name(&key), e))
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StorageError> {
        let full = self.keys.list_prefix(prefix);
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.config.bucket)
            .prefix(&full)
            .set_max_keys(self.config.list_page_size)
            .into_paginator()
            .send();
        let mut found = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| s3_error("list", &self.name(&full), e))?;
            for object in page.contents() {
                let Some(key) = object.key().and_then(|k| self.keys.relative(k)) else { continue };
                found.push(ObjectInfo { key: key.to_owned(), size: object.size().unwrap_or(0).max(0) as u64 });
            }
        }
        found.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_parses_with_defaults_and_refuses_keys() {
        let config: S3Config = toml::from_str("bucket = 'b'\nregion = 'eu-west-1'\n").unwrap();
        assert_eq!((config.part_size, config.multipart_threshold, config.path_style), (8 * MIB, 16 * MIB, false));
        assert!(toml::from_str::<S3Config>("bucket = 'b'\nsecret_access_key = 'x'\n").is_err(), "no secrets in files");
    }
}

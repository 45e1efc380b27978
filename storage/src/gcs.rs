//! Google Cloud Storage, through Google's `google-cloud-storage` client for objects' bytes and the
//! JSON API for the rest.
//!
//! Credentials are Application Default Credentials (`google-cloud-auth`): the key file named by
//! `GOOGLE_APPLICATION_CREDENTIALS`, workload identity on GKE, the VM's service account on Compute
//! Engine, or `gcloud auth application-default login`; `anonymous` sends none (an emulator).
//! The client's own retries and read resumes are off: the caller retries through
//! [`crate::RetryPolicy`] and counts every retry. Objects above `resumable_threshold` are put with a
//! resumable upload in chunks of `part_size`; a get of an object larger than `resumable_threshold`
//! is fetched again in parallel ranges of `part_size`, pinned to the generation the first answer
//! named.
//!
//! The client sends puts and gets over the JSON API, but deletes, listings and buckets only through
//! its gRPC control client, which the emulator (fake-gcs-server) does not serve; those go over the
//! JSON API here, with the same credentials' headers.

use std::time::Duration;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures::{StreamExt, TryStreamExt};
use google_cloud_auth::credentials::{self, CacheableResource, Credentials};
use google_cloud_storage::client::Storage as GcsClient;
use google_cloud_storage::model_ext::ReadRange;
use google_cloud_storage::read_resume_policy::NeverResume;
use google_cloud_gax::retry_policy::NeverRetry;
use serde::Deserialize;

use crate::keys::KeySpace;
use crate::{ErrorKind, ObjectInfo, Storage, StorageError};

const MIB: u64 = 1024 * 1024;
/// Resumable uploads send chunks in multiples of 256 KiB.
const CHUNK_QUANTUM: u64 = 256 * 1024;
const GOOGLE: &str = "https://storage.googleapis.com";

/// Settings of a Cloud Storage bucket as a store. Credentials are never part of a config file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GcsConfig {
    pub bucket: String,
    /// Every key of the store lives under this prefix.
    #[serde(default)]
    pub prefix: String,
    /// Endpoint of the JSON API: Google's when absent, or an emulator's (`http://127.0.0.1:4443`).
    pub endpoint: Option<String>,
    /// The project a bucket is created in (`dataset seed`, tests); a store that only uses an
    /// existing bucket needs none.
    pub project: Option<String>,
    /// Sends no credentials (an emulator, a public bucket) instead of Application Default Credentials.
    #[serde(default)]
    pub anonymous: bool,
    /// Objects larger than this are uploaded with a resumable upload, and fetched in ranges.
    #[serde(default = "GcsConfig::default_resumable_threshold")]
    pub resumable_threshold: u64,
    /// Chunk size of resumable uploads (a multiple of 256 KiB) and of ranged downloads.
    #[serde(default = "GcsConfig::default_part_size")]
    pub part_size: u64,
    /// Ranges in flight for one object.
    #[serde(default = "GcsConfig::default_part_concurrency")]
    pub part_concurrency: usize,
    /// Objects per page of a listing (the JSON API's default and maximum is 1,000).
    pub list_page_size: Option<u32>,
}

impl GcsConfig {
    fn default_resumable_threshold() -> u64 {
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
            endpoint: None,
            project: None,
            anonymous: false,
            resumable_threshold: Self::default_resumable_threshold(),
            part_size: Self::default_part_size(),
            part_concurrency: Self::default_part_concurrency(),
            list_page_size: None,
        }
    }
}

/// A bucket (and optional key prefix) on Cloud Storage or its emulator.
#[derive(Debug, Clone)]
pub struct GcsStore {
    client: GcsClient,
    http: reqwest::Client,
    credentials: Credentials,
    /// The JSON API's root, without a trailing `/`.
    base: String,
    config: GcsConfig,
    keys: KeySpace,
}

/// One page of a JSON API object listing (`size` is a decimal string there).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListPage {
    #[serde(default)]
    items: Vec<ListedObject>,
    next_page_token: Option<String>,
}

#[derive(Deserialize)]
struct ListedObject {
    name: String,
    size: String,
}

impl GcsStore {
    /// Builds the clients and finds the credentials. Nothing is sent to the bucket until the first
    /// request (see [`Storage::probe`]).
    pub async fn connect(config: GcsConfig) -> Result<Self, StorageError> {
        if config.bucket.is_empty() {
            return Err(StorageError::new(ErrorKind::NoBucket, "gcs: no bucket given"));
        }
        if config.part_size == 0 || !config.part_size.is_multiple_of(CHUNK_QUANTUM) || config.part_concurrency == 0 {
            return Err(StorageError::new(ErrorKind::Other, "gcs: part_size must be a positive multiple of 256 KiB and part_concurrency at least 1"));
        }
        crate::tls::install_ring();
        let credentials = if config.anonymous {
            credentials::anonymous::Builder::new().build()
        } else {
            credentials::Builder::default().build().map_err(|e| {
                StorageError::new(
                    ErrorKind::Unauthorized,
                    format!("gcs bucket {}: no Application Default Credentials ({e}); set GOOGLE_APPLICATION_CREDENTIALS or run on a VM or GKE with a service account", config.bucket),
                )
            })?
        };
        let base = config.endpoint.as_deref().unwrap_or(GOOGLE).trim_end_matches('/').to_owned();
        let client = GcsClient::builder()
            .with_endpoint(base.clone())
            .with_credentials(credentials.clone())
            .with_retry_policy(NeverRetry)
            .with_read_resume_policy(NeverResume)
            .with_resumable_upload_threshold(config.resumable_threshold as usize)
            .with_resumable_upload_buffer_size(config.part_size as usize)
            .build()
            .await
            .map_err(|e| StorageError::new(ErrorKind::Other, format!("gcs bucket {}: cannot build the client: {e}", config.bucket)))?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| StorageError::new(ErrorKind::Other, format!("gcs: cannot build the HTTP client: {e}")))?;
        let keys = KeySpace::new(&config.prefix);
        Ok(Self { client, http, credentials, base, config, keys })
    }

    fn name(&self, key: &str) -> String {
        format!("gs://{}/{key}", self.config.bucket)
    }

    /// The bucket as the client names it.
    fn bucket_path(&self) -> String {
        format!("projects/_/buckets/{}", self.config.bucket)
    }

    fn object_url(&self, key: &str) -> String {
        format!("{}/storage/v1/b/{}/o/{}", self.base, self.config.bucket, encode(key))
    }

    /// A JSON API request with the credentials' headers.
    async fn request(&self, method: reqwest::Method, url: String, op: &str, name: &str) -> Result<reqwest::RequestBuilder, StorageError> {
        let headers = match self.credentials.headers(http::Extensions::new()).await {
            Ok(CacheableResource::New { data, .. }) => data,
            Ok(CacheableResource::NotModified) => http::HeaderMap::new(),
            Err(e) => return Err(StorageError::new(ErrorKind::Unauthorized, format!("{op} {name}: no access token: {}", crate::keys::scrub(&e.to_string())))),
        };
        Ok(self.http.request(method, url).headers(headers))
    }

    /// Sends a JSON API request; an answer other than 2xx is an error of its status.
    async fn send(&self, builder: reqwest::RequestBuilder, op: &str, name: &str) -> Result<reqwest::Response, StorageError> {
        let answer = builder.send().await.map_err(|e| {
            let kind = if e.is_timeout() { ErrorKind::Timeout } else { ErrorKind::Unavailable };
            StorageError::new(kind, format!("{op} {name}: {}", crate::keys::scrub(&crate::error_chain(&e))))
        })?;
        let status = answer.status().as_u16();
        if answer.status().is_success() {
            return Ok(answer);
        }
        let body = answer.text().await.unwrap_or_default();
        Err(status_error(op, name, status, &json_message(&body)))
    }

    /// Creates the bucket (seeding a dataset, tests); an existing bucket of ours is fine.
    pub async fn create_bucket(&self) -> Result<(), StorageError> {
        let name = format!("gs://{}", self.config.bucket);
        let project = self.config.project.as_deref().unwrap_or("cloudbench");
        let url = format!("{}/storage/v1/b?project={}", self.base, encode(project));
        let builder = self.request(reqwest::Method::POST, url, "create", &name).await?;
        let body = serde_json::json!({ "name": self.config.bucket }).to_string();
        match self.send(builder.header("content-type", "application/json").body(body), "create", &name).await {
            Ok(_) => Ok(()),
            // 409: the bucket exists; if it is not ours, the probe after it says so.
            Err(e) if e.message.contains("HTTP 409") => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Deletes every object under the store's prefix, then the bucket itself (tests, cleanup).
    pub async fn delete_bucket(&self) -> Result<(), StorageError> {
        for object in self.list("").await? {
            self.delete(&object.key).await?;
        }
        let name = format!("gs://{}", self.config.bucket);
        let url = format!("{}/storage/v1/b/{}", self.base, self.config.bucket);
        let builder = self.request(reqwest::Method::DELETE, url, "delete", &name).await?;
        self.send(builder, "delete", &name).await.map(drop)
    }

    /// Reads one answer of the client to its end.
    async fn read_all(&self, mut answer: google_cloud_storage::read_object::ReadObjectResponse, name: &str) -> Result<Bytes, StorageError> {
        let mut data = BytesMut::new();
        while let Some(chunk) = answer.next().await {
            let chunk = chunk.map_err(|e| match client_error("get", name, e) {
                e if e.kind == ErrorKind::Other => StorageError::new(ErrorKind::Unavailable, format!("{} (body cut short)", e.message)),
                e => e,
            })?;
            data.extend_from_slice(&chunk);
        }
        Ok(data.freeze())
    }

    async fn get_range(&self, key: &str, start: u64, len: u64, generation: i64) -> Result<Bytes, StorageError> {
        let answer = self
            .client
            .read_object(self.bucket_path(), key)
            .set_generation(generation)
            .set_read_range(ReadRange::segment(start, len))
            .compute_crc32c(false)
            .send()
            .await
            .map_err(|e| client_error("get", &self.name(key), e))?;
        let part = self.read_all(answer, &self.name(key)).await?;
        if part.len() as u64 != len {
            return Err(StorageError::new(ErrorKind::Unavailable, format!("get {}: range at {start} gave {} of {len} bytes", self.name(key), part.len())));
        }
        Ok(part)
    }
}

/// Percent-encodes a path segment or query value (object names may hold `/`, spaces and more).
fn encode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect::<String>().replace('+', "%20")
}

/// The `error.message` of a JSON API error body, or the start of the body itself.
fn json_message(body: &str) -> String {
    #[derive(Deserialize)]
    struct Answer {
        error: Detail,
    }
    #[derive(Deserialize)]
    struct Detail {
        message: String,
    }
    match serde_json::from_str::<Answer>(body) {
        Ok(answer) => answer.error.message,
        Err(_) => body.lines().next().unwrap_or_default().chars().take(200).collect(),
    }
}

/// The kind of a JSON API answer's status, as every backend sorts them.
fn status_kind(status: u16) -> ErrorKind {
    match status {
        404 => ErrorKind::NotFound,
        401 | 403 => ErrorKind::Unauthorized,
        429 | 503 => ErrorKind::Throttled,
        408 | 504 => ErrorKind::Timeout,
        s if s >= 500 => ErrorKind::Unavailable,
        _ => ErrorKind::Other,
    }
}

/// An error answer; the message names the object and the status, never a token.
fn status_error(op: &str, name: &str, status: u16, message: &str) -> StorageError {
    let detail = match (status, message.is_empty()) {
        (401 | 403, true) => format!("HTTP {status}: access denied (check the credentials and the bucket's IAM roles)"),
        (_, true) => format!("HTTP {status}"),
        (_, false) => format!("HTTP {status}: {message}"),
    };
    StorageError::new(status_kind(status), format!("{op} {name}: {}", crate::keys::scrub(&detail)))
}

/// Maps a failure of Google's client to what the caller can act on.
fn client_error(op: &str, name: &str, err: google_cloud_storage::Error) -> StorageError {
    if let Some(status) = err.http_status_code() {
        let message = err.http_payload().map(|body| json_message(&String::from_utf8_lossy(body))).unwrap_or_default();
        return status_error(op, name, status, &message);
    }
    let kind = if err.is_timeout() {
        ErrorKind::Timeout
    } else if err.is_authentication() {
        ErrorKind::Unauthorized
    } else if err.is_connect() || err.is_io() || err.is_transport() {
        ErrorKind::Unavailable
    } else {
        ErrorKind::Other
    };
    StorageError::new(kind, format!("{op} {name}: {}", crate::keys::scrub(&crate::error_chain(&err))))
}

#[async_trait]
impl Storage for GcsStore {
    fn describe(&self) -> String {
        let endpoint = self.config.endpoint.as_deref().map(|u| format!(" at {u}")).unwrap_or_default();
        let prefix = if self.keys.prefix().is_empty() { String::new() } else { format!(" prefix {}", self.keys.prefix()) };
        format!("gcs bucket {}{prefix}{endpoint}", self.config.bucket)
    }

    async fn probe(&self) -> Result<(), StorageError> {
        let name = format!("gs://{}", self.config.bucket);
        let url = format!("{}/storage/v1/b/{}?fields=name", self.base, self.config.bucket);
        let builder = self.request(reqwest::Method::GET, url, "open", &name).await?;
        self.send(builder, "open", &name).await.map(drop).map_err(|e| match e.kind {
            ErrorKind::NotFound => StorageError::new(ErrorKind::NoBucket, format!("bucket {} does not exist", self.config.bucket)),
            _ => e,
        })
    }

    async fn put(&self, key: &str, data: Bytes) -> Result<(), StorageError> {
        let key = self.keys.full(key)?;
        let name = self.name(&key);
        let failed = |e| match client_error("put", &name, e) {
            // A put needs no object: a 404 is the bucket's.
            e if e.kind == ErrorKind::NotFound => StorageError::new(ErrorKind::NoBucket, format!("{} (the bucket does not exist)", e.message)),
            e => e,
        };
        // The CRC32C goes in the request's metadata, computed before sending, so the service still
        // checks every byte. Left to the client, a single-shot upload would send it in a third,
        // trailing multipart part, which fake-gcs-server (v1.54) stores as part of the object.
        let crc = crc32c::crc32c(&data);
        self.client.write_object(self.bucket_path(), &key, data).with_known_crc32c(crc).send_unbuffered().await.map(drop).map_err(failed)
    }

    async fn get(&self, key: &str) -> Result<Bytes, StorageError> {
        let key = self.keys.full(key)?;
        let answer = self.client.read_object(self.bucket_path(), &key).compute_crc32c(false).send().await.map_err(|e| client_error("get", &self.name(&key), e))?;
        let object = answer.object();
        // 0 when the answer has no `x-goog-stored-content-length` (fake-gcs-server sends none):
        // then the one answer is read to its end.
        let size = object.size.max(0) as u64;
        if size <= self.config.resumable_threshold {
            let whole = self.read_all(answer, &self.name(&key)).await?;
            if size > 0 && whole.len() as u64 != size {
                return Err(StorageError::new(ErrorKind::Unavailable, format!("get {}: got {} of {size} bytes", self.name(&key), whole.len())));
            }
            return Ok(whole);
        }
        // A large object: drop this stream and fetch it in parallel ranges of the same generation.
        drop(answer);
        let part = self.config.part_size;
        let ranges: Vec<(u64, u64)> = (0..size.div_ceil(part)).map(|i| (i * part, part.min(size - i * part))).collect();
        let parts: Vec<Bytes> = futures::stream::iter(ranges)
            .map(|(start, len)| {
                let key = &key;
                async move { self.get_range(key, start, len, object.generation).await }
            })
            .buffered(self.config.part_concurrency)
            .try_collect()
            .await?;
        let mut whole = BytesMut::with_capacity(size as usize);
        for part in parts {
            whole.extend_from_slice(&part);
        }
        Ok(whole.freeze())
    }

    async fn delete(&self, key: &str) -> Result<(), StorageError> {
        let key = self.keys.full(key)?;
        let name = self.name(&key);
        let builder = self.request(reqwest::Method::DELETE, self.object_url(&key), "delete", &name).await?;
        match self.send(builder, "delete", &name).await {
            Err(e) if e.kind == ErrorKind::NotFound => Ok(()),
            other => other.map(drop),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StorageError> {
        let full = self.keys.list_prefix(prefix);
        let name = self.name(&full);
        let mut found = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut url = format!("{}/storage/v1/b/{}/o?prefix={}&fields=items(name,size),nextPageToken", self.base, self.config.bucket, encode(&full));
            if let Some(n) = self.config.list_page_size {
                url.push_str(&format!("&maxResults={n}"));
            }
            if let Some(t) = &token {
                url.push_str(&format!("&pageToken={}", encode(t)));
            }
            let builder = self.request(reqwest::Method::GET, url, "list", &name).await?;
            let answer = self.send(builder, "list", &name).await?;
            let body = answer.bytes().await.map_err(|e| StorageError::new(ErrorKind::Unavailable, format!("list {name}: page cut short: {}", crate::error_chain(&e))))?;
            let page: ListPage =
                serde_json::from_slice(&body).map_err(|e| StorageError::new(ErrorKind::BadResponse, format!("list {name}: unreadable page: {e}")))?;
            for object in page.items {
                let Some(key) = self.keys.relative(&object.name) else { continue };
                let size = object.size.parse().map_err(|_| StorageError::new(ErrorKind::Other, format!("list {name}: size {:?} of {key} is not a number", object.size)))?;
                found.push(ObjectInfo { key: key.to_owned(), size });
            }
            match page.next_page_token.filter(|t| !t.is_empty()) {
                Some(next) => token = Some(next),
                None => break,
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
        let config: GcsConfig = toml::from_str("bucket = 'b'\nproject = 'p'\n").unwrap();
        assert_eq!((config.part_size, config.resumable_threshold, config.anonymous), (8 * MIB, 16 * MIB, false));
        assert!(toml::from_str::<GcsConfig>("bucket = 'b'\nprivate_key = 'x'\n").is_err(), "no secrets in files");
    }

    #[test]
    fn object_names_are_encoded_as_one_segment() {
        assert_eq!(encode("a/b c+d?.jpg"), "a%2Fb%20c%2Bd%3F.jpg");
    }

    #[test]
    fn statuses_sort_as_the_other_clouds_do() {
        let kinds: Vec<ErrorKind> = [404, 401, 403, 429, 503, 408, 504, 500, 502, 400, 412].into_iter().map(status_kind).collect();
        use ErrorKind::*;
        assert_eq!(kinds, [NotFound, Unauthorized, Unauthorized, Throttled, Throttled, Timeout, Timeout, Unavailable, Unavailable, Other, Other]);
        let err = status_error("get", "gs://b/k", 403, "");
        assert!(err.message.contains("access denied") && !err.message.contains('\n'), "{err}");
    }
}

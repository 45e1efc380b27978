//! Which store to open: a config table (`kind = "local" | "s3" | "azure" | "gcs"`) or a URL.

use std::path::PathBuf;
use std::sync::Arc;

use serde::Deserialize;

#[cfg(feature = "azure")]
use crate::{AzureAuth, AzureConfig, AzureStore};
#[cfg(feature = "gcs")]
use crate::{GcsConfig, GcsStore};
#[cfg(feature = "s3")]
use crate::{S3Config, S3Store};
use crate::{LocalDirStore, Storage, StorageError};

/// A store as named in a worker config or on a command line.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StorageConfig {
    /// A directory acting as a bucket.
    Local {
        path: PathBuf,
        #[serde(default)]
        durable: bool,
    },
    /// An S3 bucket or S3-compatible server.
    #[cfg(feature = "s3")]
    S3(S3Config),
    /// An Azure Blob container or Azurite.
    #[cfg(feature = "azure")]
    Azure(AzureConfig),
    /// A Google Cloud Storage bucket or its emulator.
    #[cfg(feature = "gcs")]
    Gcs(GcsConfig),
}

impl StorageConfig {
    /// Parses a store URL:
    /// - a path, or `file:///path`: a local directory;
    /// - `s3://BUCKET[/PREFIX][?region=R&endpoint=URL&path_style=true&profile=P]`;
    /// - `azure://CONTAINER[/PREFIX]?endpoint=URL[&auth=managed_identity|workload_identity|sas|account_key][&account=A]`,
    ///   or `azure://ACCOUNT.blob.core.windows.net/CONTAINER[/PREFIX]`;
    /// - `gs://BUCKET[/PREFIX][?endpoint=URL&project=P&auth=none]` (`auth=none`: no credentials, for
    ///   an emulator; otherwise Application Default Credentials).
    pub fn from_url(text: &str) -> Result<Self, String> {
        let bad = |why: &str| format!("storage URL {text:?}: {why}");
        let Some((scheme, rest)) = text.split_once("://") else {
            return Ok(StorageConfig::Local { path: PathBuf::from(text), durable: false });
        };
        let (location, query) = rest.split_once('?').unwrap_or((rest, ""));
        let mut params: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes()).into_owned().collect();
        let mut take = |name: &str| params.iter().position(|(k, _)| k == name).map(|i| params.remove(i).1);
        let config = match scheme {
            "file" => StorageConfig::Local { path: PathBuf::from(location), durable: take("durable").is_some_and(|v| v == "true") },
            #[cfg(feature = "s3")]
            "s3" => {
                let (bucket, prefix) = bucket_and_prefix(location).ok_or_else(|| bad("no bucket"))?;
                let mut config = S3Config::new(bucket);
                config.prefix = prefix.to_owned();
                config.region = take("region");
                config.endpoint_url = take("endpoint");
                config.path_style = take("path_style").is_some_and(|v| v == "true");
                config.profile = take("profile");
                StorageConfig::S3(config)
            }
            #[cfg(feature = "azure")]
            "azure" => {
                let (first, rest) = location.split_once('/').unwrap_or((location, ""));
                let (endpoint, container, prefix) = if first.contains(".blob.") {
                    let (container, prefix) = rest.split_once('/').unwrap_or((rest, ""));
                    (format!("https://{first}"), container, prefix)
                } else {
                    (take("endpoint").ok_or_else(|| bad("give ?endpoint=URL or azure://ACCOUNT.blob.core.windows.net/CONTAINER"))?, first, rest)
                };
                if container.is_empty() {
                    return Err(bad("no container"));
                }
                let auth = match take("auth").as_deref() {
                    None | Some("managed_identity") => AzureAuth::ManagedIdentity { client_id: take("client_id") },
                    Some("workload_identity") => AzureAuth::WorkloadIdentity,
                    Some("sas") => AzureAuth::Sas { env: None, file: None },
                    Some("account_key") => AzureAuth::AccountKey { env: None, file: None },
                    Some(other) => return Err(bad(&format!("unknown auth {other:?}"))),
                };
                let mut config = AzureConfig::new(endpoint, container, auth);
                config.prefix = prefix.to_owned();
                config.account = take("account");
                StorageConfig::Azure(config)
            }
            #[cfg(feature = "gcs")]
            "gs" => {
                let (bucket, prefix) = bucket_and_prefix(location).ok_or_else(|| bad("no bucket"))?;
                let mut config = GcsConfig::new(bucket);
                config.prefix = prefix.to_owned();
                config.endpoint = take("endpoint");
                config.project = take("project");
                config.anonymous = match take("auth").as_deref() {
                    None | Some("default") => false,
                    Some("none") => true,
                    Some(other) => return Err(bad(&format!("unknown auth {other:?} (default or none)"))),
                };
                StorageConfig::Gcs(config)
            }
            #[cfg(not(feature = "s3"))]
            "s3" => return Err(bad("this build has no S3 support (the storage crate's `s3` feature)")),
            #[cfg(not(feature = "azure"))]
            "azure" => return Err(bad("this build has no Azure Blob support (the storage crate's `azure` feature)")),
            #[cfg(not(feature = "gcs"))]
            "gs" => return Err(bad("this build has no Google Cloud Storage support (the storage crate's `gcs` feature)")),
            other => return Err(bad(&format!("unknown scheme {other:?} (file, s3, azure or gs)"))),
        };
        match params.first() {
            Some((name, _)) => Err(bad(&format!("unknown parameter {name:?}"))),
            None => Ok(config),
        }
    }

    /// Creates the directory, bucket or container when it is missing.
    pub async fn create(&self) -> Result<(), StorageError> {
        match self {
            StorageConfig::Local { path, durable } => LocalDirStore::create(path, *durable).map(drop),
            #[cfg(feature = "s3")]
            StorageConfig::S3(config) => S3Store::connect(config.clone()).await?.create_bucket().await,
            #[cfg(feature = "azure")]
            StorageConfig::Azure(config) => AzureStore::connect(config.clone())?.create_container().await,
            #[cfg(feature = "gcs")]
            StorageConfig::Gcs(config) => GcsStore::connect(config.clone()).await?.create_bucket().await,
        }
    }

    /// Opens the store and checks that it can be used (the bucket exists, the credentials work).
    pub async fn open(&self) -> Result<Arc<dyn Storage>, StorageError> {
        let store: Arc<dyn Storage> = match self {
            StorageConfig::Local { path, durable } => Arc::new(LocalDirStore::open(path, *durable)?),
            #[cfg(feature = "s3")]
            StorageConfig::S3(config) => Arc::new(S3Store::connect(config.clone()).await?),
            #[cfg(feature = "azure")]
            StorageConfig::Azure(config) => Arc::new(AzureStore::connect(config.clone())?),
            #[cfg(feature = "gcs")]
            StorageConfig::Gcs(config) => Arc::new(GcsStore::connect(config.clone()).await?),
        };
        store.probe().await?;
        Ok(store)
    }
}

/// `BUCKET[/PREFIX]` of an `s3://` or `gs://` URL; `None` without a bucket.
#[cfg(any(feature = "s3", feature = "gcs"))]
fn bucket_and_prefix(location: &str) -> Option<(&str, &str)> {
    let (bucket, prefix) = location.split_once('/').unwrap_or((location, ""));
    (!bucket.is_empty()).then_some((bucket, prefix))
}

#[cfg(all(test, feature = "s3", feature = "azure", feature = "gcs"))]
mod tests {
    use super::*;

    #[test]
    fn parses_store_urls() {
        assert_eq!(StorageConfig::from_url("/data/coco").unwrap(), StorageConfig::Local { path: "/data/coco".into(), durable: false });
        let StorageConfig::S3(s3) = StorageConfig::from_url("s3://bench/coco/train?endpoint=http://127.0.0.1:8014&path_style=true&region=us-east-1").unwrap() else {
            panic!()
        };
        assert_eq!((s3.bucket.as_str(), s3.prefix.as_str(), s3.path_style), ("bench", "coco/train", true));
        assert_eq!(s3.endpoint_url.as_deref(), Some("http://127.0.0.1:8014"));
        let StorageConfig::Azure(az) = StorageConfig::from_url("azure://acme.blob.core.windows.net/images/coco").unwrap() else { panic!() };
        assert_eq!((az.endpoint.as_str(), az.container.as_str(), az.prefix.as_str()), ("https://acme.blob.core.windows.net", "images", "coco"));
        let StorageConfig::Azure(az) =
            StorageConfig::from_url("azure://bench?endpoint=http://127.0.0.1:10000/devstoreaccount1&auth=account_key").unwrap()
        else {
            panic!()
        };
        assert_eq!(az.auth, AzureAuth::AccountKey { env: None, file: None });
        for bad in ["s3://", "gs://", "gs://b?auth=password", "s3://b?colour=red", "azure://c", "azure://c?endpoint=e&auth=password"] {
            let err = StorageConfig::from_url(bad).unwrap_err();
            assert!(err.starts_with("storage URL") && !err.contains('\n'), "{bad}: {err}");
        }
    }

    #[test]
    fn parses_gcs_urls() {
        let StorageConfig::Gcs(gcs) = StorageConfig::from_url("gs://bench/coco/train?endpoint=http://127.0.0.1:4443&project=p&auth=none").unwrap() else {
            panic!()
        };
        assert_eq!((gcs.bucket.as_str(), gcs.prefix.as_str(), gcs.endpoint.as_deref(), gcs.project.as_deref()), ("bench", "coco/train", Some("http://127.0.0.1:4443"), Some("p")));
        assert!(gcs.anonymous);
        let StorageConfig::Gcs(gcs) = StorageConfig::from_url("gs://bench").unwrap() else { panic!() };
        assert!(!gcs.anonymous && gcs.endpoint.is_none());
        let config: StorageConfig = toml::from_str("kind = 'gcs'\nbucket = 'b'\nanonymous = true\n").unwrap();
        assert!(matches!(config, StorageConfig::Gcs(ref c) if c.anonymous));
    }

    #[test]
    fn parses_config_tables() {
        let config: StorageConfig = toml::from_str("kind = 's3'\nbucket = 'b'\npath_style = true\n").unwrap();
        assert!(matches!(config, StorageConfig::S3(ref c) if c.path_style));
        let config: StorageConfig = toml::from_str("kind = 'local'\npath = '/x'\n").unwrap();
        assert_eq!(config, StorageConfig::Local { path: "/x".into(), durable: false });
        assert!(toml::from_str::<StorageConfig>("kind = 's3'\nbucket = 'b'\nbukcet = 'c'\n").is_err());
    }
}

//! Azure Blob Storage (and the Azurite emulator), through Microsoft's `azure_storage_blob` SDK.
//!
//! Authentication, in the order a user meets it: managed identity on an Azure VM, workload identity
//! on AKS, a SAS token, or an account key from which an account SAS is signed here (the SDK has no
//! shared-key auth). The SDK's retries are off: the caller retries through [`crate::RetryPolicy`] and
//! counts every retry. Blobs above `block_size` are uploaded as staged blocks and downloaded in
//! ranges, `block_concurrency` at a time.

use std::num::NonZero;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use azure_core::credentials::TokenCredential;
use azure_core::http::{NoFormat, RequestContent, RetryOptions, Url};
use azure_storage_blob::models::{BlobClientDownloadOptions, BlobContainerClientListBlobsOptions, BlockBlobClientUploadOptions};
use azure_storage_blob::{BlobContainerClient, BlobContainerClientOptions};
use bytes::Bytes;
use futures::TryStreamExt;
use serde::Deserialize;

use crate::keys::{KeySpace, scrub};
use crate::sas::AccountSas;
use crate::{ErrorKind, ObjectInfo, Secret, Storage, StorageError};

const MIB: u64 = 1024 * 1024;

/// Settings of an Azure Blob container as a store. Secrets are named by where to read them, never
/// written in the file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AzureConfig {
    /// Blob service URL: `https://ACCOUNT.blob.core.windows.net`, or Azurite's
    /// `http://127.0.0.1:10000/devstoreaccount1`.
    pub endpoint: String,
    pub container: String,
    /// Every key of the store lives under this prefix.
    #[serde(default)]
    pub prefix: String,
    /// How to authenticate.
    #[serde(default)]
    pub auth: AzureAuth,
    /// Storage account name, when the endpoint does not tell it (custom domains).
    pub account: Option<String>,
    /// Blobs larger than this are uploaded as blocks of this size and downloaded in ranges of it.
    #[serde(default = "AzureConfig::default_block_size")]
    pub block_size: u64,
    /// Blocks in flight for one blob.
    #[serde(default = "AzureConfig::default_block_concurrency")]
    pub block_concurrency: usize,
    /// Blobs per page of a listing (the service's default and maximum is 5,000).
    pub list_page_size: Option<i32>,
    /// Lifetime of an account SAS signed from a key, in hours (renewed when the store is reopened).
    #[serde(default = "AzureConfig::default_sas_hours")]
    pub sas_hours: u64,
}

/// How a container is accessed.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum AzureAuth {
    /// The VM's or App Service's managed identity (system-assigned, or user-assigned by client id).
    ManagedIdentity { client_id: Option<String> },
    /// AKS workload identity: `AZURE_CLIENT_ID`, `AZURE_TENANT_ID`, `AZURE_FEDERATED_TOKEN_FILE`.
    WorkloadIdentity,
    /// A SAS token from the environment variable `env` (default `AZURE_STORAGE_SAS_TOKEN`) or a file.
    Sas { env: Option<String>, file: Option<PathBuf> },
    /// An account key from the environment variable `env` (default `AZURE_STORAGE_KEY`) or a file;
    /// an account SAS is signed from it.
    AccountKey { env: Option<String>, file: Option<PathBuf> },
    /// A SAS token given in code.
    #[serde(skip)]
    SasToken(Secret),
    /// An account key given in code.
    #[serde(skip)]
    Key(Secret),
}

impl Default for AzureAuth {
    fn default() -> Self {
        AzureAuth::ManagedIdentity { client_id: None }
    }
}

impl AzureConfig {
    fn default_block_size() -> u64 {
        8 * MIB
    }
    fn default_block_concurrency() -> usize {
        4
    }
    fn default_sas_hours() -> u64 {
        24 * 30
    }

    /// A config for `container` at `endpoint` with every other setting at its default.
    pub fn new(endpoint: impl Into<String>, container: impl Into<String>, auth: AzureAuth) -> Self {
        Self {
            endpoint: endpoint.into(),
            container: container.into(),
            prefix: String::new(),
            auth,
            account: None,
            block_size: Self::default_block_size(),
            block_concurrency: Self::default_block_concurrency(),
            list_page_size: None,
            sas_hours: Self::default_sas_hours(),
        }
    }

    /// The account name: the first label of `ACCOUNT.blob.core.windows.net`, or the first path
    /// segment of an emulator URL (`http://127.0.0.1:10000/devstoreaccount1`).
    fn account_name(&self, url: &Url) -> Option<String> {
        if let Some(account) = &self.account {
            return Some(account.clone());
        }
        let host = url.host_str()?;
        if host.contains(".blob.") {
            return host.split('.').next().map(str::to_owned);
        }
        url.path_segments()?.find(|s| !s.is_empty()).map(str::to_owned)
    }
}

/// A container (and optional key prefix) on Azure Blob Storage or Azurite.
pub struct AzureStore {
    container: BlobContainerClient,
    config: AzureConfig,
    keys: KeySpace,
    /// The container URL without any SAS, for messages.
    shown: String,
}

impl std::fmt::Debug for AzureStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AzureStore").field("container", &self.shown).field("prefix", &self.keys.prefix()).finish()
    }
}

fn config_error(config: &AzureConfig, message: impl std::fmt::Display) -> StorageError {
    StorageError::new(ErrorKind::Other, format!("azure container {}: {message}", config.container))
}

fn unauthorized(config: &AzureConfig, message: impl std::fmt::Display) -> StorageError {
    StorageError::new(ErrorKind::Unauthorized, format!("azure container {}: {message}", config.container))
}

impl AzureStore {
    /// Builds the client and resolves the credential. Nothing is sent until the first request.
    pub fn connect(config: AzureConfig) -> Result<Self, StorageError> {
        crate::tls::install_ring();
        if config.container.is_empty() {
            return Err(StorageError::new(ErrorKind::NoBucket, "azure: no container given"));
        }
        if config.block_size == 0 || config.block_concurrency == 0 {
            return Err(config_error(&config, "block_size and block_concurrency must be at least 1"));
        }
        let endpoint = Url::parse(config.endpoint.trim_end_matches('/'))
            .map_err(|e| config_error(&config, format!("bad endpoint {:?}: {e}", config.endpoint)))?;
        let mut url = endpoint.clone();
        url.path_segments_mut().map_err(|_| config_error(&config, "endpoint cannot be a base URL"))?.pop_if_empty().push(&config.container);
        let shown = url.to_string();
        let mut credential: Option<Arc<dyn TokenCredential>> = None;
        let sas = match &config.auth {
            AzureAuth::SasToken(token) => Some(token.clone()),
            AzureAuth::Sas { env, file } => Some(
                crate::secret_from(env.as_deref().unwrap_or("AZURE_STORAGE_SAS_TOKEN"), file.as_deref())
                    .map_err(|e| unauthorized(&config, format!("SAS token: {e}")))?,
            ),
            AzureAuth::Key(key) => Some(sign(&config, &endpoint, key)?),
            AzureAuth::AccountKey { env, file } => {
                let key = crate::secret_from(env.as_deref().unwrap_or("AZURE_STORAGE_KEY"), file.as_deref())
                    .map_err(|e| unauthorized(&config, format!("account key: {e}")))?;
                Some(sign(&config, &endpoint, &key)?)
            }
            AzureAuth::ManagedIdentity { client_id } => {
                let options = azure_identity::ManagedIdentityCredentialOptions {
                    user_assigned_id: client_id.clone().map(azure_identity::UserAssignedId::ClientId),
                    ..Default::default()
                };
                credential = Some(
                    azure_identity::ManagedIdentityCredential::new(Some(options))
                        .map_err(|e| unauthorized(&config, format!("managed identity: {}", scrub(&e.to_string()))))?,
                );
                None
            }
            AzureAuth::WorkloadIdentity => {
                credential = Some(
                    azure_identity::WorkloadIdentityCredential::new(None)
                        .map_err(|e| unauthorized(&config, format!("workload identity: {}", scrub(&e.to_string()))))?,
                );
                None
            }
        };
        if let Some(sas) = sas {
            url.set_query(Some(sas.expose().trim_start_matches('?')));
        }
        let mut options = BlobContainerClientOptions::default();
        options.client_options.retry = RetryOptions::none();
        let container = BlobContainerClient::new(url, credential, Some(options))
            .map_err(|e| config_error(&config, scrub(&e.to_string())))?;
        let keys = KeySpace::new(&config.prefix);
        Ok(Self { container, config, keys, shown })
    }

    fn name(&self, key: &str) -> String {
        format!("{}/{key}", self.shown)
    }

    /// Creates the container (seeding a dataset, tests); an existing one is fine.
    pub async fn create_container(&self) -> Result<(), StorageError> {
        match self.container.create(None).await {
            Ok(_) => Ok(()),
            Err(e) => match azure_error("create", &self.shown, e) {
                e if e.message.contains("ContainerAlreadyExists") => Ok(()),
                e => Err(e),
            },
        }
    }

    /// Deletes the container and everything in it (tests, cleanup).
    pub async fn delete_container(&self) -> Result<(), StorageError> {
        self.container.delete(None).await.map(drop).map_err(|e| azure_error("delete", &self.shown, e))
    }
}

fn sign(config: &AzureConfig, endpoint: &Url, key: &Secret) -> Result<Secret, StorageError> {
    let account = config.account_name(endpoint).ok_or_else(|| config_error(config, "cannot tell the account name from the endpoint; set account"))?;
    AccountSas::blob_read_write(&account, Duration::from_secs(config.sas_hours.max(1) * 3_600))
        .sign(key)
        .map_err(|e| unauthorized(config, e))
}

/// Maps an SDK failure to what the caller can act on. Messages carry the error code or status, and any
/// URL in them has its SAS signature scrubbed.
fn azure_error(op: &str, name: &str, err: azure_core::Error) -> StorageError {
    use azure_core::error::ErrorKind as Az;
    let status = err.http_status().map(u16::from);
    let code = match err.kind() {
        Az::HttpResponse { error_code, .. } => error_code.clone(),
        _ => None,
    };
    let kind = match (code.as_deref(), status) {
        (Some("BlobNotFound"), _) => ErrorKind::NotFound,
        (Some("ContainerNotFound" | "ContainerBeingDeleted"), _) => ErrorKind::NoBucket,
        (Some("AuthenticationFailed" | "AuthorizationFailure" | "AuthorizationPermissionMismatch" | "InsufficientAccountPermissions"), _)
        | (_, Some(401 | 403)) => ErrorKind::Unauthorized,
        (Some("ServerBusy"), _) | (_, Some(429 | 503)) => ErrorKind::Throttled,
        (Some("OperationTimedOut"), _) | (_, Some(408 | 504)) => ErrorKind::Timeout,
        (_, Some(404)) => ErrorKind::NotFound,
        (_, Some(s)) if s >= 500 => ErrorKind::Unavailable,
        _ => match err.kind() {
            Az::Io | Az::Connection => ErrorKind::Unavailable,
            Az::Credential => ErrorKind::Unauthorized,
            _ => ErrorKind::Other,
        },
    };
    let detail = match (code, status) {
        (Some(code), Some(status)) => format!("{code} (HTTP {status})"),
        (None, Some(status)) => format!("HTTP {status}"),
        _ => {
            // The chain of causes says what a bare kind does not (connection refused, DNS, TLS).
            crate::error_chain(&err)
        }
    };
    StorageError::new(kind, scrub(&format!("{op} {name}: {detail}")))
}

#[async_trait]
impl Storage for AzureStore {
    fn describe(&self) -> String {
        let prefix = if self.keys.prefix().is_empty() { String::new() } else { format!(" prefix {}", self.keys.prefix()) };
        format!("azure container {}{prefix}", self.shown)
    }

    async fn probe(&self) -> Result<(), StorageError> {
        match self.container.exists().await {
            Ok(true) => Ok(()),
            Ok(false) => Err(StorageError::new(ErrorKind::NoBucket, format!("container {} does not exist", self.shown))),
            Err(e) => Err(azure_error("open", &self.shown, e)),
        }
    }

    async fn put(&self, key: &str, data: Bytes) -> Result<(), StorageError> {
        let key = self.keys.full(key)?;
        let options = BlockBlobClientUploadOptions {
            partition_size: NonZero::new(self.config.block_size),
            parallel: NonZero::new(self.config.block_concurrency),
            ..Default::default()
        };
        let content: RequestContent<Bytes, NoFormat> = data.into();
        self.container
            .blob_client(&key)
            .block_blob_client()
            .upload(content, Some(options))
            .await
            .map(drop)
            .map_err(|e| azure_error("put", &self.name(&key), e))
    }

    async fn get(&self, key: &str) -> Result<Bytes, StorageError> {
        let key = self.keys.full(key)?;
        let options = BlobClientDownloadOptions {
            partition_size: NonZero::new(self.config.block_size as usize),
            parallel: NonZero::new(self.config.block_concurrency),
            ..Default::default()
        };
        let download = self.container.blob_client(&key).download(Some(options)).await.map_err(|e| azure_error("get", &self.name(&key), e))?;
        download.body.collect().await.map_err(|e| match azure_error("get", &self.name(&key), e) {
            // A body cut short is a connection problem whatever the SDK calls it.
            e if e.kind == ErrorKind::Other => StorageError::new(ErrorKind::Unavailable, e.message),
            e => e,
        })
    }

    async fn delete(&self, key: &str) -> Result<(), StorageError> {
        let key = self.keys.full(key)?;
        match self.container.blob_client(&key).delete(None).await {
            Ok(_) => Ok(()),
            Err(e) => match azure_error("delete", &self.name(&key), e) {
                e if e.kind == ErrorKind::NotFound => Ok(()),
                e => Err(e),
            },
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StorageError> {
        let full = self.keys.list_prefix(prefix);
        let options = BlobContainerClientListBlobsOptions {
            prefix: Some(full.clone()),
            maxresults: self.config.list_page_size,
            ..Default::default()
        };
        let mut items = self.container.list_blobs(Some(options)).map_err(|e| azure_error("list", &self.name(&full), e))?;
        let mut found = Vec::new();
        while let Some(item) = items.try_next().await.map_err(|e| azure_error("list", &self.name(&full), e))? {
            let Some(name) = item.name.as_deref() else { continue };
            let Some(key) = self.keys.relative(name) else { continue };
            let size = item.properties.as_ref().and_then(|p| p.content_length).unwrap_or(0);
            found.push(ObjectInfo { key: key.to_owned(), size });
        }
        found.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_the_account_from_the_endpoint() {
        let config = AzureConfig::new("https://acme.blob.core.windows.net", "c", AzureAuth::default());
        assert_eq!(config.account_name(&Url::parse(&config.endpoint).unwrap()).as_deref(), Some("acme"));
        let url = Url::parse("http://127.0.0.1:10000/devstoreaccount1").unwrap();
        assert_eq!(config.account_name(&url).as_deref(), Some("devstoreaccount1"));
    }

    #[test]
    fn config_reads_auth_kinds_and_refuses_inline_secrets() {
        let config: AzureConfig =
            toml::from_str("endpoint = 'http://127.0.0.1:10000/devstoreaccount1'\ncontainer = 'c'\nauth = { kind = 'account_key' }\n").unwrap();
        assert_eq!(config.auth, AzureAuth::AccountKey { env: None, file: None });
        assert_eq!(config.block_size, 8 * MIB);
        assert!(toml::from_str::<AzureConfig>("endpoint = 'e'\ncontainer = 'c'\nkey = 'x'\n").is_err());
        assert!(toml::from_str::<AzureConfig>("endpoint = 'e'\ncontainer = 'c'\nauth = { kind = 'key' }\n").is_err());
    }

    #[test]
    fn a_missing_key_is_one_line_naming_the_variable() {
        let config = AzureConfig::new(
            "http://127.0.0.1:10000/devstoreaccount1",
            "c",
            AzureAuth::AccountKey { env: Some("CLOUDBENCH_TEST_NO_SUCH_VAR".into()), file: None },
        );
        let err = AzureStore::connect(config).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Unauthorized);
        assert!(err.message.contains("CLOUDBENCH_TEST_NO_SUCH_VAR") && !err.message.contains('\n'), "{err}");
    }
}

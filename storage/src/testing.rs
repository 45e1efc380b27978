//! The test servers `scripts/services.sh` starts, as every crate's tests reach them: the S3 server
//! (s3s-fs), the Azure Blob emulator (Azurite) and the Cloud Storage emulator (fake-gcs-server) on loopback, their addresses and test keys from
//! the `CLOUDBENCH_TEST_*` variables the script sets (or its defaults), and names no other test
//! uses. Test values only, known to everyone and valid only on loopback.

use std::sync::atomic::{AtomicU32, Ordering};

/// Azurite's well-known development account key (public, from Microsoft's documentation).
pub const AZURITE_KEY: &str = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// The variable `name`, or `default` when it is unset or empty.
pub fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).ok().filter(|v| !v.is_empty()).unwrap_or_else(|| default.to_owned())
}

/// The S3 server's endpoint.
pub fn s3_endpoint() -> String {
    env_or("CLOUDBENCH_TEST_S3_ENDPOINT", "http://127.0.0.1:8014")
}

/// The Azure Blob emulator's account endpoint.
pub fn azure_endpoint() -> String {
    env_or("CLOUDBENCH_TEST_AZURE_ENDPOINT", "http://127.0.0.1:10000/devstoreaccount1")
}

/// The Cloud Storage emulator's JSON API endpoint.
pub fn gcs_endpoint() -> String {
    env_or("CLOUDBENCH_TEST_GCS_ENDPOINT", "http://127.0.0.1:80")
}

pub fn s3_access_key() -> String {
    env_or("CLOUDBENCH_TEST_S3_ACCESS_KEY", "cloudbench-test")
}

pub fn s3_secret_key() -> String {
    env_or("CLOUDBENCH_TEST_S3_SECRET_KEY", "cloudbench-test-secret")
}

pub fn azure_key() -> String {
    env_or("CLOUDBENCH_TEST_AZURE_KEY", AZURITE_KEY)
}

/// `bucket` on the S3 server (path-style, us-east-1), with its test keys given in code.
#[cfg(feature = "s3")]
pub fn s3_config(bucket: &str) -> crate::S3Config {
    let mut config = crate::S3Config::new(bucket);
    config.endpoint_url = Some(s3_endpoint());
    config.region = Some("us-east-1".into());
    config.path_style = true;
    config.credentials = Some(crate::StaticCredentials { access_key_id: s3_access_key(), secret_access_key: crate::Secret::new(s3_secret_key()) });
    config
}

/// `container` on Azurite, with the development account key given in code.
#[cfg(feature = "azure")]
pub fn azure_config(container: &str) -> crate::AzureConfig {
    crate::AzureConfig::new(azure_endpoint(), container, crate::AzureAuth::Key(crate::Secret::new(azure_key())))
}

/// `bucket` on the Cloud Storage emulator, without credentials (it takes any).
#[cfg(feature = "gcs")]
pub fn gcs_config(bucket: &str) -> crate::GcsConfig {
    let mut config = crate::GcsConfig::new(bucket);
    config.endpoint = Some(gcs_endpoint());
    config.project = Some("cloudbench-test".into());
    config.anonymous = true;
    config
}

/// A name no other test or test run uses: `prefix`, this process and a counter.
pub fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("after 1970").subsec_nanos();
    format!("{prefix}-{}-{nanos:x}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// A bucket or container name of [`unique`]'s: lowercase letters, digits and dashes, at most 63
/// characters, as both clouds require.
pub fn store_name(tag: &str) -> String {
    unique(tag).to_ascii_lowercase().replace(|c: char| !c.is_ascii_alphanumeric(), "-").chars().take(63).collect()
}

#![cfg(all(feature = "s3", feature = "azure", feature = "gcs"))]

//! The conformance suite and the failure modes users meet, against the real servers the test script
//! starts: s3s-fs for S3, Azurite for Azure Blob and fake-gcs-server for Cloud Storage. Each test uses
//! its own bucket or container.

use std::time::Duration;

use bytes::Bytes;
use storage::testing::{azure_endpoint, azure_key, gcs_endpoint, store_name};
use storage::{AzureAuth, AzureConfig, AzureStore, ErrorKind, GcsConfig, GcsStore, S3Config, S3Store, Secret, StaticCredentials, Storage, StorageConfig};

const LIMIT: Duration = Duration::from_secs(120);

/// The test server's bucket, with parts small enough that a few MiB take the multipart path and
/// listings short enough that they page.
fn s3_config(bucket: &str) -> S3Config {
    let mut config = storage::testing::s3_config(bucket);
    config.multipart_threshold = 5 * 1024 * 1024;
    config.part_size = 5 * 1024 * 1024;
    config.list_page_size = Some(10);
    config
}

/// Azurite's container, with blocks and listing pages as small as [`s3_config`]'s.
fn azure_config(container: &str) -> AzureConfig {
    let mut config = storage::testing::azure_config(container);
    config.block_size = 4 * 1024 * 1024;
    config.list_page_size = Some(10);
    config
}

/// The emulator's bucket, with chunks and listing pages as small as [`s3_config`]'s.
fn gcs_config(bucket: &str) -> GcsConfig {
    let mut config = storage::testing::gcs_config(bucket);
    config.resumable_threshold = 4 * 1024 * 1024;
    config.part_size = 1024 * 1024;
    config.list_page_size = Some(10);
    config
}

async fn new_gcs_bucket(tag: &str) -> GcsStore {
    let store = GcsStore::connect(gcs_config(&store_name(tag))).await.unwrap();
    tokio::time::timeout(LIMIT, store.create_bucket()).await.expect("fake-gcs-server answers").expect("fake-gcs-server is running (scripts/services.sh)");
    store
}

async fn new_bucket(tag: &str) -> S3Store {
    let store = S3Store::connect(s3_config(&store_name(tag))).await.unwrap();
    tokio::time::timeout(LIMIT, store.create_bucket()).await.expect("s3s-fs answers").expect("s3s-fs is running (scripts/services.sh)");
    store
}

async fn new_container(tag: &str) -> AzureStore {
    let store = AzureStore::connect(azure_config(&store_name(tag))).unwrap();
    tokio::time::timeout(LIMIT, store.create_container()).await.expect("Azurite answers").expect("Azurite is running (scripts/services.sh)");
    store
}

#[tokio::test]
async fn s3_passes_the_conformance_suite() {
    let store = new_bucket("conf").await;
    store.probe().await.unwrap();
    tokio::time::timeout(LIMIT, storage::conformance::run_all(&store, "conformance")).await.unwrap();
    store.delete_bucket().await.unwrap();
}

#[tokio::test]
async fn azure_passes_the_conformance_suite() {
    let store = new_container("conf").await;
    store.probe().await.unwrap();
    tokio::time::timeout(LIMIT, storage::conformance::run_all(&store, "conformance")).await.unwrap();
    store.delete_container().await.unwrap();
}

#[tokio::test]
async fn gcs_passes_the_conformance_suite() {
    let store = new_gcs_bucket("conf").await;
    store.probe().await.unwrap();
    tokio::time::timeout(LIMIT, storage::conformance::run_all(&store, "conformance")).await.unwrap();
    store.delete_bucket().await.unwrap();
}

#[tokio::test]
async fn gcs_objects_read_back_through_the_json_api_as_written() {
    // The oracle is the server's own record: the object's size and bytes as its JSON API and
    // download endpoint report them, not this backend's get.
    let store = new_gcs_bucket("readback").await;
    let bucket = store.describe().split_whitespace().nth(2).unwrap().to_owned();
    storage::tls::install_ring();
    let http = reqwest::Client::new();
    for (key, len) in [("small/one.jpg", 1000usize), ("large/two.jpg", 6 * 1024 * 1024 + 17)] {
        let data: Vec<u8> = (0..len as u32).map(|i| (i * 7 % 253) as u8).collect();
        store.put(key, Bytes::from(data.clone())).await.unwrap();
        let name = key.replace('/', "%2F");
        let meta = http.get(format!("{}/storage/v1/b/{bucket}/o/{name}", gcs_endpoint())).send().await.unwrap().bytes().await.unwrap();
        let meta: serde_json::Value = serde_json::from_slice(&meta).unwrap();
        assert_eq!(meta["size"].as_str(), Some(len.to_string().as_str()), "{key}: {meta}");
        let body = http.get(format!("{}/storage/v1/b/{bucket}/o/{name}?alt=media", gcs_endpoint())).send().await.unwrap().bytes().await.unwrap();
        assert!(body == data, "{key}: the server holds other bytes ({} of {len})", body.len());
    }
    store.delete_bucket().await.unwrap();
}

#[tokio::test]
async fn a_store_prefix_is_invisible_to_callers() {
    let s3 = new_bucket("prefix").await;
    let mut config = s3_config(&s3_bucket_name(&s3));
    config.prefix = "datasets/coco/".into();
    let scoped = S3Store::connect(config).await.unwrap();
    scoped.put("a/1.jpg", Bytes::from_static(b"one")).await.unwrap();
    assert_eq!(s3.get("datasets/coco/a/1.jpg").await.unwrap(), Bytes::from_static(b"one"));
    assert_eq!(scoped.list("a/").await.unwrap()[0].key, "a/1.jpg");
    s3.delete_bucket().await.unwrap();
}

fn s3_bucket_name(store: &S3Store) -> String {
    store.describe().split_whitespace().nth(2).unwrap().to_owned()
}

#[tokio::test]
async fn wrong_s3_credentials_are_unauthorized_and_never_printed() {
    let store = new_bucket("creds").await;
    let mut config = s3_config(&s3_bucket_name(&store));
    config.credentials = Some(StaticCredentials { access_key_id: "cloudbench-test".into(), secret_access_key: Secret::new("wrong-secret-xyzzy") });
    let wrong = S3Store::connect(config).await.unwrap();
    let err = wrong.probe().await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Unauthorized, "{err}");
    let err = wrong.put("k", Bytes::from_static(b"x")).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Unauthorized, "{err}");
    assert!(!err.message.contains("wrong-secret-xyzzy") && !err.message.contains('\n'), "{err}");
    store.delete_bucket().await.unwrap();
}

#[tokio::test]
async fn a_missing_bucket_or_container_is_named() {
    let bucket = store_name("missing");
    let s3 = S3Store::connect(s3_config(&bucket)).await.unwrap();
    let err = s3.probe().await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::NoBucket, "{err}");
    assert!(err.message.contains(&bucket), "{err}");
    let container = store_name("missing");
    let azure = AzureStore::connect(azure_config(&container)).unwrap();
    let err = azure.probe().await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::NoBucket, "{err}");
    assert!(err.message.contains(&container), "{err}");
    let err = azure.put("k", Bytes::from_static(b"x")).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::NoBucket, "{err}");
    let bucket = store_name("missing");
    let gcs = GcsStore::connect(gcs_config(&bucket)).await.unwrap();
    let err = gcs.probe().await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::NoBucket, "{err}");
    assert!(err.message.contains(&bucket), "{err}");
    let err = gcs.put("k", Bytes::from_static(b"x")).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::NoBucket, "{err}");
}

#[tokio::test]
async fn a_wrong_azure_key_is_unauthorized_and_the_signature_never_printed() {
    let store = new_container("key").await;
    let mut config = azure_config(store.describe().rsplit('/').next().unwrap());
    config.auth = AzureAuth::Key(Secret::new("d3Jvbmcta2V5LXh5enp5"));
    let wrong = AzureStore::connect(config).unwrap();
    let err = wrong.probe().await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Unauthorized, "{err}");
    let err = wrong.get("k").await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Unauthorized, "{err}");
    assert!(!err.message.contains("sig=") || err.message.contains("sig=***"), "{err}");
    store.delete_container().await.unwrap();
}

#[tokio::test]
async fn an_unreachable_endpoint_is_unavailable_not_a_hang() {
    // Port 9 (discard) is closed on loopback: the connection is refused at once.
    let mut s3 = s3_config("any");
    s3.endpoint_url = Some("http://127.0.0.1:9".into());
    let s3 = S3Store::connect(s3).await.unwrap();
    let err = tokio::time::timeout(LIMIT, s3.get("k")).await.unwrap().unwrap_err();
    assert_eq!(err.kind, ErrorKind::Unavailable, "{err}");
    let mut azure = azure_config("any");
    azure.endpoint = "http://127.0.0.1:9/devstoreaccount1".into();
    let azure = AzureStore::connect(azure).unwrap();
    let err = tokio::time::timeout(LIMIT, azure.get("k")).await.unwrap().unwrap_err();
    assert_eq!(err.kind, ErrorKind::Unavailable, "{err}");
    assert!(!err.message.contains('\n') && !err.message.contains("sig=A"), "{err}");
    let mut gcs = gcs_config("any");
    gcs.endpoint = Some("http://127.0.0.1:9".into());
    let gcs = GcsStore::connect(gcs).await.unwrap();
    for err in [tokio::time::timeout(LIMIT, gcs.get("k")).await.unwrap().unwrap_err(), tokio::time::timeout(LIMIT, gcs.list("")).await.unwrap().unwrap_err()] {
        assert_eq!(err.kind, ErrorKind::Unavailable, "{err}");
        assert!(!err.message.contains('\n'), "{err}");
    }
}

#[tokio::test]
async fn store_urls_open_real_stores() {
    let store = new_container("url").await;
    let container = store.describe().rsplit('/').next().unwrap().to_owned();
    let endpoint = azure_endpoint();
    let StorageConfig::Azure(mut config) = StorageConfig::from_url(&format!("azure://{container}/p?endpoint={endpoint}&auth=account_key")).unwrap() else {
        panic!()
    };
    config.auth = AzureAuth::Key(Secret::new(azure_key()));
    let opened = StorageConfig::Azure(config).open().await.unwrap();
    opened.put("x.jpg", Bytes::from_static(b"x")).await.unwrap();
    assert_eq!(store.list("").await.unwrap()[0].key, "p/x.jpg");
    store.delete_container().await.unwrap();
}

#[tokio::test]
async fn gs_urls_open_real_buckets() {
    let store = new_gcs_bucket("url").await;
    let bucket = store.describe().split_whitespace().nth(2).unwrap().to_owned();
    let opened = StorageConfig::from_url(&format!("gs://{bucket}/p?endpoint={}&auth=none", gcs_endpoint())).unwrap().open().await.unwrap();
    opened.put("x.jpg", Bytes::from_static(b"x")).await.unwrap();
    assert_eq!(store.list("").await.unwrap()[0].key, "p/x.jpg");
    store.delete_bucket().await.unwrap();
}

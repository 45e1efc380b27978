//! Assertions every [`Storage`] implementation must pass, run by each backend's tests against a real
//! server (or directory) under a unique prefix.

use bytes::Bytes;

use crate::{ErrorKind, ObjectInfo, Storage};

/// Runs every conformance check against `store`, using keys under `prefix` only.
pub async fn run_all(store: &dyn Storage, prefix: &str) {
    put_get_round_trips_bytes(store, prefix).await;
    put_replaces_and_delete_removes(store, prefix).await;
    list_filters_by_prefix_and_sorts(store, prefix).await;
    large_objects_round_trip(store, prefix).await;
    listings_span_pages(store, prefix).await;
    keys_are_validated_alike(store, prefix).await;
}

async fn put_get_round_trips_bytes(store: &dyn Storage, prefix: &str) {
    let key = format!("{prefix}/round-trip/image 1.jpg");
    let data: Vec<u8> = (0..200_000u32).map(|i| (i * 31 % 251) as u8).collect();
    store.put(&key, Bytes::from(data.clone())).await.unwrap();
    assert_eq!(store.get(&key).await.unwrap(), data, "{}: bytes differ", store.describe());
    let empty = format!("{prefix}/round-trip/empty");
    store.put(&empty, Bytes::new()).await.unwrap();
    assert!(store.get(&empty).await.unwrap().is_empty());
    let missing = store.get(&format!("{prefix}/round-trip/missing")).await.unwrap_err();
    assert_eq!(missing.kind, ErrorKind::NotFound, "{}: {missing}", store.describe());
}

async fn put_replaces_and_delete_removes(store: &dyn Storage, prefix: &str) {
    let key = format!("{prefix}/replace/a");
    store.put(&key, Bytes::from_static(b"first")).await.unwrap();
    store.put(&key, Bytes::from_static(b"second")).await.unwrap();
    assert_eq!(store.get(&key).await.unwrap(), Bytes::from_static(b"second"));
    store.delete(&key).await.unwrap();
    assert_eq!(store.get(&key).await.unwrap_err().kind, ErrorKind::NotFound);
    store.delete(&key).await.expect("deleting a missing object succeeds");
}

async fn list_filters_by_prefix_and_sorts(store: &dyn Storage, prefix: &str) {
    let base = format!("{prefix}/list");
    for (name, size) in [("b/2", 2usize), ("a", 1), ("b/1", 3)] {
        store.put(&format!("{base}/{name}"), Bytes::from(vec![7u8; size])).await.unwrap();
    }
    store.put(&format!("{prefix}/listing-elsewhere"), Bytes::from_static(b"x")).await.unwrap();
    let found = store.list(&format!("{base}/")).await.unwrap();
    let expected: Vec<ObjectInfo> = [("a", 1), ("b/1", 3), ("b/2", 2)]
        .iter()
        .map(|(n, s)| ObjectInfo { key: format!("{base}/{n}"), size: *s })
        .collect();
    assert_eq!(found, expected, "{}", store.describe());
}

/// 12 MiB and 3 bytes: above the multipart and block thresholds the backend tests configure, and not a
/// multiple of any part size.
async fn large_objects_round_trip(store: &dyn Storage, prefix: &str) {
    let key = format!("{prefix}/large/object.bin");
    let data: Vec<u8> = (0..12 * 1024 * 1024 + 3u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    store.put(&key, Bytes::from(data.clone())).await.unwrap();
    let back = store.get(&key).await.unwrap();
    assert!(back.len() == data.len() && back == data, "{}: large object differs ({} of {} bytes)", store.describe(), back.len(), data.len());
    assert_eq!(store.list(&format!("{prefix}/large/")).await.unwrap()[0].size, data.len() as u64);
    store.delete(&key).await.unwrap();
}

/// More objects than the backend tests' page size, so a listing must follow continuation tokens.
async fn listings_span_pages(store: &dyn Storage, prefix: &str) {
    let base = format!("{prefix}/paged");
    for i in 0..23 {
        store.put(&format!("{base}/{i:03}.jpg"), Bytes::from(vec![1u8; i])).await.unwrap();
    }
    let found = store.list(&format!("{base}/")).await.unwrap();
    assert_eq!(found.len(), 23, "{}", store.describe());
    assert!(found.iter().enumerate().all(|(i, o)| o.key == format!("{base}/{i:03}.jpg") && o.size == i as u64));
}

async fn keys_are_validated_alike(store: &dyn Storage, prefix: &str) {
    for key in [format!("{prefix}/../x"), format!("/{prefix}/x"), format!("{prefix}//x"), format!("{prefix}/dir/"), String::new()] {
        let err = store.put(&key, Bytes::from_static(b"x")).await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidKey, "{}: {key:?}", store.describe());
    }
}

//! The collector's metrics log, whatever is on disk: reading it gives the intact records or a
//! corruption error, and opening it for appends cuts a torn tail; never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().expect("temporary folder");
    std::fs::write(dir.path().join("run.metrics"), data).expect("log written");
    let store = analyzer::store::MetricsStore::open(dir.path()).expect("store opens");
    let read = store.read("run");
    let mut store = store;
    if let (Ok(records), Ok(count)) = (read, store.count("run")) {
        assert!(count <= records.len(), "distinct keys {count} of {} records", records.len());
    }
});

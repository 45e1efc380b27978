//! The metrics store: one append-only log per run, deduplicated by job key, durable before it answers.
//!
//! A log is a sequence of records `[length: u32 LE][crc32: u32 LE][BatchMetrics protobuf]`. A record is
//! flushed to disk (`fdatasync`) before [`MetricsStore::append`] returns, so the collector acknowledges
//! only what survives a crash. A crash in the middle of a write leaves a torn last record, which the next
//! open detects by its length or checksum and cuts off; every earlier record is intact.

use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use prost::Message;
use proto::v1::BatchMetrics;

/// Largest record accepted; anything larger is corruption.
const MAX_RECORD: u32 = 64 << 20;
const LOG_EXTENSION: &str = "metrics";

/// A failure of the metrics store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("metrics store {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("metrics store {path}: record at byte {offset} is corrupt: {reason}")]
    Corrupt { path: PathBuf, offset: u64, reason: String },
}

struct RunLog {
    path: PathBuf,
    file: File,
    keys: HashSet<String>,
}

/// Per-run logs of `BatchMetrics` under one directory.
pub struct MetricsStore {
    dir: PathBuf,
    logs: HashMap<String, RunLog>,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io { path: path.to_owned(), source }
}

/// Reads every intact record of a log and returns them with the length of the intact prefix.
fn read_records(path: &Path) -> Result<(Vec<BatchMetrics>, u64), StoreError> {
    let file = File::open(path).map_err(io(path))?;
    let len = file.metadata().map_err(io(path))?.len();
    let mut reader = BufReader::new(file);
    let mut records = Vec::new();
    let mut offset = 0u64;
    loop {
        let mut header = [0u8; 8];
        if offset + 8 > len {
            break; // end of log, or a torn header
        }
        reader.read_exact(&mut header).map_err(io(path))?;
        let size = u32::from_le_bytes(header[..4].try_into().expect("4 bytes"));
        let crc = u32::from_le_bytes(header[4..].try_into().expect("4 bytes"));
        if size > MAX_RECORD || offset + 8 + u64::from(size) > len {
            break; // a torn record: its payload never made it to disk
        }
        let mut payload = vec![0u8; size as usize];
        reader.read_exact(&mut payload).map_err(io(path))?;
        if crc32fast::hash(&payload) != crc {
            if offset + 8 + u64::from(size) == len {
                break; // a torn last record
            }
            return Err(StoreError::Corrupt { path: path.into(), offset, reason: "checksum mismatch".into() });
        }
        let metrics = BatchMetrics::decode(payload.as_slice())
            .map_err(|e| StoreError::Corrupt { path: path.into(), offset, reason: e.to_string() })?;
        records.push(metrics);
        offset += 8 + u64::from(size);
    }
    Ok((records, offset))
}

impl MetricsStore {
    /// Opens (creating) the store directory; logs are opened on first use.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        Ok(Self { dir, logs: HashMap::new() })
    }

    fn log_path(&self, run_id: &str) -> PathBuf {
        self.dir.join(format!("{run_id}.{LOG_EXTENSION}"))
    }

    fn log(&mut self, run_id: &str) -> Result<&mut RunLog, StoreError> {
        if !self.logs.contains_key(run_id) {
            let path = self.log_path(run_id);
            let mut file = OpenOptions::new().create(true).read(true).append(true).open(&path).map_err(io(&path))?;
            let (records, intact) = read_records(&path)?;
            if file.metadata().map_err(io(&path))?.len() > intact {
                tracing::warn!(path = %path.display(), intact, "cutting off a torn last record");
                file.set_len(intact).map_err(io(&path))?;
                file.seek(SeekFrom::End(0)).map_err(io(&path))?;
            }
            let keys = records.into_iter().map(|m| m.job_key).collect();
            self.logs.insert(run_id.to_owned(), RunLog { path, file, keys });
        }
        Ok(self.logs.get_mut(run_id).expect("inserted above"))
    }

    /// Appends the metrics of `job_key` unless the store has them already; returns true when
    /// appended. The record is on disk when this returns.
    pub fn append(&mut self, key: &proto::JobKey, payload: &[u8]) -> Result<bool, StoreError> {
        let job_key = key.to_string();
        let log = self.log(&key.run_id)?;
        if log.keys.contains(&job_key) {
            return Ok(false);
        }
        let mut record = Vec::with_capacity(payload.len() + 8);
        record.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        record.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
        record.extend_from_slice(payload);
        let before = log.file.metadata().map_err(io(&log.path))?.len();
        match log.file.write_all(&record).and_then(|()| log.file.sync_data()) {
            Ok(()) => {
                log.keys.insert(job_key);
                Ok(true)
            }
            Err(e) => {
                // A full disk (or any failed write) may leave part of the record behind: cut it off so
                // the next record does not follow torn bytes, and open the log afresh next time (which
                // cuts off a torn tail again, should this cut fail too).
                let _ = log.file.set_len(before);
                let error = io(&log.path)(e);
                self.logs.remove(&key.run_id);
                Err(error)
            }
        }
    }

    /// Number of distinct jobs stored for `run_id`.
    pub fn count(&mut self, run_id: &str) -> Result<usize, StoreError> {
        Ok(self.log(run_id)?.keys.len())
    }

    /// Reads every stored metric of `run_id`, in arrival order.
    pub fn read(&self, run_id: &str) -> Result<Vec<BatchMetrics>, StoreError> {
        let path = self.log_path(run_id);
        if !path.exists() {
            return Ok(Vec::new());
        }
        Ok(read_records(&path)?.0)
    }

    /// Run ids with a log in the store, sorted.
    pub fn runs(&self) -> Result<Vec<String>, StoreError> {
        let mut runs = Vec::new();
        for entry in std::fs::read_dir(&self.dir).map_err(io(&self.dir))? {
            let path = entry.map_err(io(&self.dir))?.path();
            if path.extension().is_some_and(|e| e == LOG_EXTENSION)
                && let Some(stem) = path.file_stem().and_then(|s| s.to_str())
            {
                runs.push(stem.to_owned());
            }
        }
        runs.sort();
        Ok(runs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metrics(run: &str, index: u32) -> (proto::JobKey, Vec<u8>) {
        let key = proto::JobKey::new(run, 0, "aws", index).unwrap();
        let m = BatchMetrics { job_key: key.to_string(), run_id: run.into(), platform: "aws".into(), batch_index: index, ..Default::default() };
        (key, m.encode_to_vec())
    }

    #[test]
    fn a_job_is_stored_once_across_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = MetricsStore::open(dir.path()).unwrap();
        let (k0, p0) = metrics("r", 0);
        assert!(store.append(&k0, &p0).unwrap());
        assert!(!store.append(&k0, &p0).unwrap());
        drop(store);
        let mut store = MetricsStore::open(dir.path()).unwrap();
        assert!(!store.append(&k0, &p0).unwrap(), "deduplicated after a restart");
        let (k1, p1) = metrics("r", 1);
        assert!(store.append(&k1, &p1).unwrap());
        let read: Vec<_> = store.read("r").unwrap().into_iter().map(|m| m.batch_index).collect();
        assert_eq!(read, [0, 1]);
        assert_eq!(store.runs().unwrap(), ["r"]);
    }

    #[test]
    fn a_torn_last_record_is_cut_off_and_the_rest_kept() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = MetricsStore::open(dir.path()).unwrap();
        for i in 0..3 {
            let (k, p) = metrics("r", i);
            store.append(&k, &p).unwrap();
        }
        drop(store);
        let path = dir.path().join("r.metrics");
        let len = std::fs::metadata(&path).unwrap().len();
        OpenOptions::new().write(true).open(&path).unwrap().set_len(len - 3).unwrap();
        let mut store = MetricsStore::open(dir.path()).unwrap();
        assert_eq!(store.count("r").unwrap(), 2);
        let (k2, p2) = metrics("r", 2);
        assert!(store.append(&k2, &p2).unwrap(), "the torn job can be stored again");
        assert_eq!(store.read("r").unwrap().len(), 3);
    }

    #[test]
    fn corruption_in_the_middle_is_an_error_not_silence() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = MetricsStore::open(dir.path()).unwrap();
        for i in 0..2 {
            let (k, p) = metrics("r", i);
            store.append(&k, &p).unwrap();
        }
        let path = dir.path().join("r.metrics");
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[10] ^= 0xff;
        std::fs::write(&path, bytes).unwrap();
        assert!(matches!(MetricsStore::open(dir.path()).unwrap().read("r"), Err(StoreError::Corrupt { offset: 0, .. })));
    }
}

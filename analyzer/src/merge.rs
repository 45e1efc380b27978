//! `analyzer merge`: the stores of several collectors (one beside each cloud, say) into one,
//! deduplicated by job key. Two stores holding different records for the same job are refused before
//! anything is written, naming the job: one of them measured something else, and a merge must not
//! pick one. Merging again adds nothing; a store merged into itself changes nothing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use prost::Message;
use proto::v1::BatchMetrics;

use crate::store::{MetricsStore, StoreError};

/// Why a merge was refused.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("job {key}: {a} and {b} hold different records for it; nothing was merged")]
    Conflict { key: String, a: String, b: String },
    #[error("{0}: not a metrics store (no such directory)")]
    Missing(PathBuf),
}

/// What a merge did, per run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Merged {
    /// Records appended to the target, per run.
    pub added: BTreeMap<String, usize>,
    /// Records the target already held (or that came twice), per run.
    pub already: BTreeMap<String, usize>,
}

/// Merges every run of `sources` into the store at `target` (created when missing).
pub fn merge(target: &Path, sources: &[PathBuf]) -> Result<Merged, MergeError> {
    if let Some(missing) = sources.iter().find(|s| !s.is_dir()) {
        return Err(MergeError::Missing(missing.clone()));
    }
    let mut into = MetricsStore::open(target)?;
    let opened: Vec<(String, MetricsStore)> = sources.iter().map(|s| Ok((s.display().to_string(), MetricsStore::open(s)?))).collect::<Result<_, StoreError>>()?;
    // Every record, by run and key, with the store it came from first: the target's own first.
    let mut plan: BTreeMap<String, BTreeMap<String, (String, BatchMetrics, bool)>> = BTreeMap::new();
    let mut already: BTreeMap<String, usize> = BTreeMap::new();
    let target_name = target.display().to_string();
    let mut runs: Vec<String> = into.runs()?;
    for (_, store) in &opened {
        runs.extend(store.runs()?);
    }
    runs.sort();
    runs.dedup();
    for run in &runs {
        let records = plan.entry(run.clone()).or_default();
        for m in into.read(run)? {
            records.insert(m.job_key.clone(), (target_name.clone(), m, false));
        }
        for (name, store) in &opened {
            for m in store.read(run)? {
                match records.get(&m.job_key) {
                    Some((first, held, _)) if *held != m => {
                        return Err(MergeError::Conflict { key: m.job_key.clone(), a: first.clone(), b: name.clone() });
                    }
                    Some(_) => *already.entry(run.clone()).or_default() += 1,
                    None => {
                        records.insert(m.job_key.clone(), (name.clone(), m, true));
                    }
                }
            }
        }
    }
    let mut added: BTreeMap<String, usize> = BTreeMap::new();
    for (run, records) in plan {
        for (_, m, _) in records.into_values().filter(|(_, _, new)| *new) {
            let payload = m.encode_to_vec();
            let (key, _) = proto::validate::batch_metrics(&payload).map_err(|e| {
                StoreError::Corrupt { path: target.to_owned(), offset: 0, reason: format!("record {} cannot be merged: {e}", m.job_key) }
            })?;
            if into.append(&key, &payload)? {
                *added.entry(run.clone()).or_default() += 1;
            }
        }
    }
    Ok(Merged { added, already })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::v1::PhaseTiming;

    fn record(run: &str, platform: &str, index: u32, upload_ns: u64) -> BatchMetrics {
        let key = proto::JobKey::new(run, 0, platform, index).unwrap();
        let timing = |ns| Some(PhaseTiming { duration_ns: ns, ..Default::default() });
        BatchMetrics { job_key: key.to_string(), run_id: run.into(), platform: platform.into(), batch_index: index, upload: timing(upload_ns), download: timing(1), ..Default::default() }
    }

    fn store(dir: &Path, records: &[BatchMetrics]) {
        let mut s = MetricsStore::open(dir).unwrap();
        for m in records {
            let payload = m.encode_to_vec();
            let (key, _) = proto::validate::batch_metrics(&payload).unwrap();
            s.append(&key, &payload).unwrap();
        }
    }

    fn keys(dir: &Path, run: &str) -> Vec<String> {
        let mut k: Vec<String> = MetricsStore::open(dir).unwrap().read(run).unwrap().into_iter().map(|m| m.job_key).collect();
        k.sort();
        k
    }

    #[test]
    fn three_overlapping_stores_merge_into_exactly_their_union() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b, c, into) = (dir.path().join("a"), dir.path().join("b"), dir.path().join("c"), dir.path().join("into"));
        // aws batches 0–5 seen by a and b (overlapping 2–3), azure by c, another run by a and c.
        store(&a, &(0..4).map(|i| record("r1", "aws", i, 10)).chain([record("r2", "aws", 0, 5)]).collect::<Vec<_>>());
        store(&b, &(2..6).map(|i| record("r1", "aws", i, 10)).collect::<Vec<_>>());
        store(&c, &(0..3).map(|i| record("r1", "azure", i, 20)).chain([record("r2", "aws", 0, 5)]).collect::<Vec<_>>());
        let merged = merge(&into, &[a.clone(), b.clone(), c.clone()]).unwrap();
        let mut expected: Vec<String> = (0..6).map(|i| format!("r1/0/aws/{i}")).chain((0..3).map(|i| format!("r1/0/azure/{i}"))).collect();
        expected.sort();
        assert_eq!(keys(&into, "r1"), expected);
        assert_eq!(keys(&into, "r2"), ["r2/0/aws/0"]);
        assert_eq!((merged.added["r1"], merged.already["r1"], merged.added["r2"], merged.already["r2"]), (9, 2, 1, 1));
        // Again: nothing new.
        let again = merge(&into, &[a, b, c]).unwrap();
        assert!(again.added.is_empty(), "{again:?}");
        assert_eq!(keys(&into, "r1").len(), 9);
    }

    #[test]
    fn differing_records_for_one_key_are_refused_before_anything_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b, into) = (dir.path().join("a"), dir.path().join("b"), dir.path().join("into"));
        store(&a, &[record("r1", "aws", 0, 10), record("r1", "aws", 1, 10)]);
        store(&b, &[record("r1", "aws", 1, 11), record("r1", "aws", 2, 10)]);
        let err = merge(&into, &[a.clone(), b.clone()]).unwrap_err();
        let line = err.to_string();
        assert!(line.contains("job r1/0/aws/1") && line.contains(&a.display().to_string()) && line.contains(&b.display().to_string()), "{line}");
        assert!(!line.contains('\n'));
        assert!(keys(&into, "r1").is_empty(), "nothing merged");
        assert!(matches!(merge(&into, &[dir.path().join("nope")]), Err(MergeError::Missing(_))));
    }
}

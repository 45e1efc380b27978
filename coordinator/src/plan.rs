//! Batch planning: how a manifest splits into batches, and the fingerprint that identifies a plan.

use sha2::{Digest, Sha256};

use crate::manifest::{Entry, Manifest};
use crate::spec::RunSpec;

/// Number of batches of `objects` objects in batches of `batch_size`: the last one may be partial.
pub fn batch_count(objects: usize, batch_size: u32) -> u32 {
    objects.div_ceil(batch_size as usize) as u32
}

/// Objects of batch `index`.
pub fn batch(manifest: &Manifest, batch_size: u32, index: u32) -> &[Entry] {
    let start = index as usize * batch_size as usize;
    let end = (start + batch_size as usize).min(manifest.objects.len());
    &manifest.objects[start.min(end)..end]
}

/// Hash of a dataset: SHA-256 over the manifest's keys and checksums, in key order.
pub fn manifest_hash(manifest: &Manifest) -> String {
    let mut hash = Sha256::new();
    for e in &manifest.objects {
        hash.update(e.key.as_bytes());
        hash.update(b"=");
        hash.update(e.sha256.as_bytes());
        hash.update(b"\n");
    }
    hex::encode(hash.finalize())
}

/// Hash of everything that defines which jobs a run has: platforms, rounds, batch size and the
/// manifest's keys and checksums. Two specs with the same fingerprint produce the same jobs.
pub fn fingerprint(spec: &RunSpec, manifest: &Manifest) -> String {
    let mut hash = Sha256::new();
    hash.update(format!("v1|{}|{}|", spec.batch_size, spec.rounds));
    for p in &spec.platforms {
        hash.update(p.as_bytes());
        hash.update(b",");
    }
    hash.update(manifest_hash(manifest).as_bytes());
    if let Some(sweep) = &spec.load_sweep {
        // A sweep's stages are part of the plan: other rates are another experiment.
        hash.update(format!("|sweep {sweep:?}").as_bytes());
    }
    hex::encode(hash.finalize())
}

/// The batch of the manifest a job runs: its own index, or for a load sweep's stage (one job per
/// platform and round) the batches in turn, round by round.
pub fn job_batch(spec: &RunSpec, manifest: &Manifest, round: u32, index: u32) -> u32 {
    match spec.load_sweep {
        Some(_) => round % batch_count(manifest.objects.len(), spec.batch_size).max(1),
        None => index,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(n: usize) -> Manifest {
        let objects =
            (0..n).map(|i| Entry { key: format!("{i:06}.jpg"), size: 1, sha256: format!("{i:064x}") }).collect();
        Manifest::new("test".into(), objects).unwrap()
    }

    #[test]
    fn coco_train2017_gives_116_batches_with_a_partial_last_one() {
        assert_eq!(batch_count(118_287, 1024), 116);
        let m = manifest(118_287);
        assert_eq!(batch(&m, 1024, 0).len(), 1024);
        assert_eq!(batch(&m, 1024, 115).len(), 118_287 - 115 * 1024);
        assert_eq!(batch(&m, 1024, 115).last().unwrap().key, "118286.jpg");
        let total: usize = (0..116).map(|i| batch(&m, 1024, i).len()).sum();
        assert_eq!(total, 118_287);
    }

    #[test]
    fn exact_multiples_have_no_empty_batch() {
        assert_eq!(batch_count(2048, 1024), 2);
        assert_eq!(batch_count(1, 1024), 1);
        assert!(batch(&manifest(10), 5, 2).is_empty());
    }

    #[test]
    fn the_fingerprint_changes_with_anything_that_changes_the_jobs() {
        let text = "manifest='m'\n[[platform]]\nname='a'";
        let spec = RunSpec::parse(text, std::path::Path::new(".")).unwrap();
        let base = fingerprint(&spec, &manifest(10));
        assert_eq!(base, fingerprint(&spec, &manifest(10)));
        assert_ne!(base, fingerprint(&spec, &manifest(11)));
        let mut other = spec.clone();
        other.batch_size = 7;
        assert_ne!(base, fingerprint(&other, &manifest(10)));
        other = spec.clone();
        other.platforms.push("b".into());
        assert_ne!(base, fingerprint(&other, &manifest(10)));
    }
}

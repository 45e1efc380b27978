//! Deterministic synthetic metrics for report tests and benchmarks: platforms with known medians, a
//! step change, noise from a seeded generator.

#![allow(dead_code)]

use proto::v1::{BatchMetrics, PhaseTiming, Versions, WorkerIdentity};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// One platform of the synthetic run: seconds per MiB of each phase, and a step in download time.
pub struct Profile {
    pub name: &'static str,
    pub upload: f64,
    pub download: f64,
    pub inference: f64,
    /// From this batch on, download time is multiplied by `step_factor`.
    pub step_at: Option<u32>,
    pub step_factor: f64,
}

pub const PAPERLIKE: [Profile; 2] = [
    Profile { name: "aws", upload: 1.84, download: 1.40, inference: 1.10, step_at: None, step_factor: 1.0 },
    Profile { name: "azure", upload: 2.30, download: 0.49, inference: 0.60, step_at: Some(30), step_factor: 0.6 },
];

fn timing(seconds: f64, requests: u64, rng: &mut ChaCha8Rng) -> PhaseTiming {
    let mut h = proto::latency::new_histogram();
    let per_request_us = seconds * 1e6 / requests as f64;
    for _ in 0..requests {
        proto::latency::record(&mut h, (per_request_us * rng.random_range(0.5..1.5)) as u64);
    }
    PhaseTiming { duration_ns: (seconds * 1e9) as u64, requests, failed: 0, latency_histogram: proto::latency::encode(&h), ..Default::default() }
}

/// Metrics of `rounds` × `batches` batches per profile, 1,024 images of ~160 KB each, seeded.
pub fn metrics(run_id: &str, profiles: &[Profile], batches: u32, rounds: u32, seed: u64) -> Vec<BatchMetrics> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut out = Vec::new();
    for p in profiles {
        for round in 0..rounds {
            for index in 0..batches {
                let images = 64u32;
                let bytes = u64::from(images) * rng.random_range(140_000..180_000);
                let mib = bytes as f64 / 1048576.0;
                let noise = |rng: &mut ChaCha8Rng| rng.random_range(0.8..1.2);
                let step = if p.step_at.is_some_and(|s| index >= s) { p.step_factor } else { 1.0 };
                let start = 1_700_000_000_000_000_000i64 + (i64::from(round) * 1000 + i64::from(index)) * 10_000_000_000;
                out.push(BatchMetrics {
                    job_key: format!("{run_id}/{round}/{}/{index}", p.name),
                    run_id: run_id.into(),
                    round,
                    platform: p.name.into(),
                    batch_index: index,
                    batch_count: batches,
                    bytes,
                    images,
                    source: Some(timing(0.01, 4, &mut rng)),
                    upload: Some(timing(p.upload * mib * noise(&mut rng), 16, &mut rng)),
                    download: Some(timing(p.download * step * mib * noise(&mut rng), 16, &mut rng)),
                    inference: Some(timing(p.inference * mib * noise(&mut rng), 16, &mut rng)),
                    started_unix_ns: start,
                    finished_unix_ns: start + 5_000_000_000,
                    worker: Some(WorkerIdentity { worker_id: format!("{}-w1", p.name), host: "host".into(), platform: p.name.into(), provider: p.name.into(), region: "r1".into(), instance_type: "t1".into(), ..Default::default() }),
                    versions: Some(Versions { git_commit: "abc123".into(), model_hash: "f00d".into(), worker_version: "0.1.0".into() }),
                    attempt: 1,
                    manifest_sha256: "5eed".into(),
                    ..Default::default()
                });
            }
        }
    }
    out
}

/// Three platforms, for scaling benchmarks.
pub const THREE: [Profile; 3] = [
    Profile { name: "aws", upload: 1.84, download: 1.40, inference: 1.10, step_at: None, step_factor: 1.0 },
    Profile { name: "azure", upload: 2.30, download: 0.49, inference: 0.60, step_at: Some(30), step_factor: 0.6 },
    Profile { name: "local", upload: 0.20, download: 0.10, inference: 2.50, step_at: Some(80), step_factor: 1.5 },
];

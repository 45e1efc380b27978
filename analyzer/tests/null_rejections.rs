//! Kruskal–Wallis's false-alarm rate and power on per-batch times, against what chance allows.
//!
//! Each simulated run gives two platforms 30 batches each; a batch's time is the makespan of 8
//! requests sent 4 at a time (each request to the first free slot, the worker's closed loop), every
//! service time log-normal. Under the null (the same median on both platforms, σ = 0.3) a test at
//! α = 0.05 rejects with probability 0.05, so over 40 seeded runs the count of rejections is
//! Binomial(40, 0.05): P(X ≥ 6) = 0.048, and 5 of 40 is the bound. With one platform 10% slower (σ = 0.1)
//! the test must reject in nearly every run.

use analyzer::stats::kruskal;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A log-normal draw with this median and σ, by Box–Muller from two uniforms.
fn lognormal(rng: &mut ChaCha8Rng, median: f64, sigma: f64) -> f64 {
    let (u1, u2): (f64, f64) = (rng.random_range(f64::EPSILON..1.0), rng.random());
    let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
    median * (sigma * z).exp()
}

/// The wall time of one batch of `requests` with `slots` in flight.
fn batch_time(rng: &mut ChaCha8Rng, median: f64, sigma: f64, requests: usize, slots: usize) -> f64 {
    let mut free_at = vec![0.0f64; slots];
    for _ in 0..requests {
        let slot = (0..slots).min_by(|a, b| free_at[*a].total_cmp(&free_at[*b])).unwrap();
        free_at[slot] += lognormal(rng, median, sigma);
    }
    free_at.into_iter().fold(0.0, f64::max)
}

/// Runs rejected at α = 0.05 out of 40, platform `a` at median 20 ms and `b` at `median_b`.
fn rejections(median_b: f64, sigma: f64) -> usize {
    (0..40u64)
        .filter(|seed| {
            let mut rng = ChaCha8Rng::seed_from_u64(1000 + seed);
            let a: Vec<f64> = (0..30).map(|_| batch_time(&mut rng, 20.0, sigma, 8, 4)).collect();
            let b: Vec<f64> = (0..30).map(|_| batch_time(&mut rng, median_b, sigma, 8, 4)).collect();
            kruskal(&[&a, &b]).unwrap().p < 0.05
        })
        .count()
}

#[test]
fn identical_platforms_are_told_apart_no_more_often_than_chance_allows() {
    let count = rejections(20.0, 0.3);
    assert!(count <= 5, "{count} of 40 null runs rejected at α = 0.05 (Binomial(40, 0.05) gives ≥ 6 with probability 0.048)");
}

#[test]
fn a_ten_percent_slower_platform_is_told_apart_in_nearly_every_run() {
    // σ = 0.1, as the system test's reference endpoints: the batches' spread is then well under 10%.
    let count = rejections(22.0, 0.1);
    assert!(count >= 36, "only {count} of 40 runs told a 10% difference apart");
}

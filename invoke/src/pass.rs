//! How many images the next forward pass takes, chosen from the throughput the model thread has
//! measured (pure). A pass of more images pays where the device does more per image at once (a GPU);
//! on a CPU it may pay a little (images run one per thread) or not at all, and then only makes the
//! first image wait for the last, so the pass size that pays is found by measuring, not fixed.
//!
//! Candidates are 1, 2, 4, … up to the cap (and the cap). Each pass's seconds per image go into an
//! exponentially weighted average for its size. Until every candidate has a measurement, the next
//! unmeasured one is the limit (a pass only reaches it when that many images wait, so under light
//! load the limit stays where it was); then the limit is the smallest candidate within 5% of the
//! best seconds per image, and every [`REVISIT`] passes the next larger candidate is measured again,
//! so that a change (a warmer GPU, a busier CPU) is seen.

use std::time::Duration;

/// Weight of the newest pass in a size's average.
const ALPHA: f64 = 0.2;
/// A size within this share of the best seconds per image counts as the best (the smaller wins).
const TIE: f64 = 0.05;
/// Passes between re-measurements of the size above the best.
pub const REVISIT: u64 = 50;

/// The pass-size policy of one model thread.
#[derive(Debug, Clone)]
pub struct PassSizer {
    candidates: Vec<usize>,
    /// Seconds per image per candidate, once measured.
    cost: Vec<Option<f64>>,
    passes: u64,
}

impl PassSizer {
    /// A policy for passes of at most `max` images (at least 1).
    pub fn new(max: usize) -> Self {
        let max = max.max(1);
        let mut candidates: Vec<usize> = std::iter::successors(Some(1usize), |n| n.checked_mul(2)).take_while(|&n| n < max).collect();
        candidates.push(max);
        let cost = vec![None; candidates.len()];
        Self { candidates, cost, passes: 0 }
    }

    /// The candidate with the lowest measured seconds per image, the smaller within [`TIE`].
    fn best(&self) -> Option<usize> {
        let lowest = self.cost.iter().flatten().copied().fold(f64::INFINITY, f64::min);
        self.cost.iter().position(|c| c.is_some_and(|c| c <= lowest * (1.0 + TIE)))
    }

    /// Most images the next pass should take.
    pub fn limit(&self) -> usize {
        if let Some(unmeasured) = self.cost.iter().position(Option::is_none) {
            return self.candidates[unmeasured];
        }
        let best = self.best().unwrap_or(0);
        let revisit = self.passes % REVISIT == REVISIT - 1 && best + 1 < self.candidates.len();
        self.candidates[if revisit { best + 1 } else { best }]
    }

    /// A pass of `images` took `took`: counted for its size when that is a candidate (a pass of 3
    /// under a cap of 8 says nothing about passes of 2 or 4).
    pub fn record(&mut self, images: usize, took: Duration) {
        self.passes += 1;
        if images == 0 {
            return;
        }
        let Some(index) = self.candidates.iter().position(|&c| c == images) else { return };
        let per_image = took.as_secs_f64() / images as f64;
        let cost = &mut self.cost[index];
        *cost = Some(cost.map_or(per_image, |c| c + ALPHA * (per_image - c)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Drives the policy as a saturated queue would (every pass as large as the limit), with pass
    /// times from `pass_seconds(n)`, and returns the limit it settles on.
    fn settle(max: usize, pass_seconds: impl Fn(usize) -> f64) -> usize {
        let mut sizer = PassSizer::new(max);
        for _ in 0..(3 * REVISIT) {
            let n = sizer.limit();
            sizer.record(n, Duration::from_secs_f64(pass_seconds(n)));
        }
        // The limit most passes get (a revisit is one pass in REVISIT).
        let mut counts = std::collections::BTreeMap::new();
        for _ in 0..REVISIT {
            let n = sizer.limit();
            *counts.entry(n).or_insert(0) += 1;
            sizer.record(n, Duration::from_secs_f64(pass_seconds(n)));
        }
        *counts.iter().max_by_key(|(_, c)| **c).unwrap().0
    }

    #[test]
    fn candidates_are_powers_of_two_up_to_the_cap() {
        assert_eq!(PassSizer::new(8).candidates, [1, 2, 4, 8]);
        assert_eq!(PassSizer::new(12).candidates, [1, 2, 4, 8, 12]);
        assert_eq!(PassSizer::new(1).candidates, [1]);
        assert_eq!(PassSizer::new(0).candidates, [1]);
    }

    #[test]
    fn the_size_with_the_most_images_per_second_wins() {
        // A CPU running a batch image by image: the same 90 ms per image, or a little worse for
        // larger passes (the figures of the detector benchmark): one image per pass.
        assert_eq!(settle(8, |n| 0.090 * n as f64), 1);
        assert_eq!(settle(8, |n| 0.086 * n as f64 * (1.0 + 0.02 * n as f64)), 1);
        // A GPU with a fixed cost per pass and a small one per image: the largest pass.
        assert_eq!(settle(32, |n| 0.020 + 0.001 * n as f64), 32);
        // Best in the middle (analytically: 0.04/n + 0.002·n is least at n = √20 ≈ 4.5, of the
        // candidates 4: 0.018 s per image against 0.021 at 8 and 0.022 at 2).
        assert_eq!(settle(16, |n| 0.04 + 0.002 * (n * n) as f64), 4);
    }

    #[test]
    fn every_size_is_measured_before_one_is_chosen_and_the_next_is_revisited() {
        let mut sizer = PassSizer::new(8);
        for expected in [1, 2, 4, 8] {
            assert_eq!(sizer.limit(), expected);
            sizer.record(expected, Duration::from_millis(10 * expected as u64));
        }
        // All equal per image: the smallest wins; the revisit measures the next one up.
        assert_eq!(sizer.limit(), 1);
        let mut seen = Vec::new();
        for _ in 0..REVISIT {
            seen.push(sizer.limit());
            sizer.record(seen[seen.len() - 1], Duration::from_millis(10 * seen[seen.len() - 1] as u64));
        }
        assert_eq!(seen.iter().filter(|&&n| n == 2).count(), 1, "{seen:?}");
        assert_eq!(seen.iter().filter(|&&n| n == 1).count(), REVISIT as usize - 1);
    }

    #[test]
    fn a_change_in_cost_moves_the_choice() {
        let mut sizer = PassSizer::new(4);
        let drive = |sizer: &mut PassSizer, seconds: &dyn Fn(usize) -> f64, passes: u64| {
            for _ in 0..passes {
                let n = sizer.limit();
                sizer.record(n, Duration::from_secs_f64(seconds(n)));
            }
        };
        // First larger passes pay, then (another process now on the device) they stop paying.
        drive(&mut sizer, &|n| 0.02 + 0.001 * n as f64, 2 * REVISIT);
        assert_eq!(sizer.limit(), 4);
        drive(&mut sizer, &|n| 0.03 * n as f64, 3 * REVISIT);
        assert!(sizer.limit() < 4, "still {} after the cost changed", sizer.limit());
    }

    #[test]
    fn passes_smaller_than_any_candidate_are_not_counted_for_one() {
        let mut sizer = PassSizer::new(8);
        sizer.record(3, Duration::from_millis(1));
        assert!(sizer.cost.iter().all(Option::is_none));
        assert_eq!(sizer.limit(), 1);
    }
}

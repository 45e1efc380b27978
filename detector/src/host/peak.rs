//! The machine's peak, measured: a GEMM microkernel (one `MR × NR` block of `C = A·B` held in
//! registers over the whole depth, 6 × 16 on AVX2, 6 × 32 on AVX-512, as BLIS's and MLAS's SGEMM
//! kernels are) on data in L1, on every thread at once. The benchmark divides the convolutions'
//! GFLOP/s by it, so a figure says how far a layer is from what the cores can do.
//!
//! `A` is packed `[depth][MR]` and `B` `[depth][NR]`, so each step is MR broadcasts, NR/lanes loads
//! and MR·NR/lanes fused multiply-adds into accumulators that never leave the registers. The kernel
//! is written once over fixed-size arrays; LLVM unrolls it and allocates the accumulators to
//! registers when it is compiled for a known vector width, which [`Isa`] picks at run time.

use std::sync::OnceLock;

/// Output channels per microkernel block.
pub const MR: usize = 6;

/// The instruction set the kernels are compiled for, picked once from the processor's features.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isa {
    /// AVX-512F: 16 lanes, blocks of 6 × 32.
    Avx512,
    /// AVX2 with FMA: 8 lanes, blocks of 6 × 16.
    Avx2,
    /// Whatever the target has by default (SSE2 on x86-64, NEON on aarch64), no fused multiply-add.
    Portable,
}

impl Isa {
    /// The best this processor has (the one the `gemm` crate's run-time dispatch picks too).
    pub fn detect() -> Self {
        static ISA: OnceLock<Isa> = OnceLock::new();
        *ISA.get_or_init(|| Self::available()[0])
    }

    /// Every instruction set this processor can run, best first.
    pub fn available() -> Vec<Self> {
        let mut all = Vec::new();
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                all.push(Isa::Avx512);
            }
            if Self::avx2_fma() {
                all.push(Isa::Avx2);
            }
        }
        all.push(Isa::Portable);
        all
    }

    /// Whether this processor runs AVX2 and FMA code: the one check behind [`Isa::Avx2`] and the
    /// elementwise kernels compiled for those features.
    pub(super) fn avx2_fma() -> bool {
        #[cfg(target_arch = "x86_64")]
        return std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma");
        #[cfg(not(target_arch = "x86_64"))]
        false
    }

    pub fn name(self) -> &'static str {
        match self {
            Isa::Avx512 => "AVX-512F",
            Isa::Avx2 => "AVX2+FMA",
            Isa::Portable => "portable",
        }
    }

    /// Output pixels per microkernel block.
    pub fn nr(self) -> usize {
        match self {
            Isa::Avx512 => 32,
            Isa::Avx2 | Isa::Portable => 16,
        }
    }
}

/// `A[depth][MR] · B[depth][NR]`, accumulated in registers. `FMA` fuses each multiply-add (only
/// where the target has the instruction; elsewhere `mul_add` would be a library call).
#[inline(always)]
pub fn block<const NR: usize, const FMA: bool>(a: &[f32], b: &[f32]) -> [[f32; NR]; MR] {
    let mut acc = [[0.0f32; NR]; MR];
    for (a, b) in a.chunks_exact(MR).zip(b.chunks_exact(NR)) {
        let a: &[f32; MR] = a.try_into().expect("chunks of MR");
        let b: &[f32; NR] = b.try_into().expect("chunks of NR");
        for (row, &a) in acc.iter_mut().zip(a) {
            for (c, &b) in row.iter_mut().zip(b) {
                *c = if FMA { a.mul_add(b, *c) } else { *c + a * b };
            }
        }
    }
    acc
}

/// GFLOP/s of the microkernel on data in L1, on every thread of the current rayon pool at once: the
/// peak the convolutions are measured against. Runs for about `seconds`.
pub fn peak_gflops(isa: Isa, seconds: f64) -> f64 {
    use rayon::prelude::*;
    const DEPTH: usize = 256;
    // Inlined into the callers compiled for a feature, as the convolutions' kernels are.
    #[inline(always)]
    fn run<const NR: usize, const FMA: bool>(reps: usize) -> f32 {
        let a: Vec<f32> = (0..DEPTH * MR).map(|i| (i % 7) as f32 * 1e-3).collect();
        let b: Vec<f32> = (0..DEPTH * NR).map(|i| (i % 5) as f32 * 1e-3).collect();
        let mut sum = 0.0;
        for _ in 0..reps {
            sum += std::hint::black_box(block::<NR, FMA>(std::hint::black_box(&a), &b))[MR - 1][NR - 1];
        }
        sum
    }
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    fn avx512(reps: usize) -> f32 {
        run::<32, true>(reps)
    }
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    fn avx2(reps: usize) -> f32 {
        run::<16, true>(reps)
    }
    let once = |reps: usize| match isa {
        // SAFETY: `isa` is one the processor has (Isa::available).
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => unsafe { avx512(reps) },
        // SAFETY: as above.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => unsafe { avx2(reps) },
        _ => run::<16, false>(reps),
    };
    let threads = rayon::current_num_threads();
    let flops = |reps: usize| (2 * MR * isa.nr() * DEPTH * reps * threads) as f64;
    // Calibrate on one thread, then time every thread together.
    let mut reps = 1000;
    loop {
        let started = std::time::Instant::now();
        std::hint::black_box(once(reps));
        let took = started.elapsed().as_secs_f64();
        if took > 0.05 {
            reps = ((reps as f64) * seconds / took).max(1.0) as usize;
            break;
        }
        reps *= 4;
    }
    let started = std::time::Instant::now();
    (0..threads).into_par_iter().for_each(|_| {
        std::hint::black_box(once(reps));
    });
    flops(reps) / started.elapsed().as_secs_f64() / 1e9
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_block_is_the_product_of_its_panels() {
        let depth = 37;
        let a: Vec<f32> = (0..depth * MR).map(|i| ((i * 31) % 17) as f32 - 8.0).collect();
        let b: Vec<f32> = (0..depth * 16).map(|i| ((i * 13) % 11) as f32 - 5.0).collect();
        // Small integers: every product and sum is exact in f32, fused or not.
        for got in [block::<16, true>(&a, &b), block::<16, false>(&a, &b)] {
            for i in 0..MR {
                for j in 0..16 {
                    let want: f64 = (0..depth).map(|p| a[p * MR + i] as f64 * b[p * 16 + j] as f64).sum();
                    assert_eq!(got[i][j] as f64, want, "row {i}, column {j}");
                }
            }
        }
    }
}

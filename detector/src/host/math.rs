//! Elementwise math on the host: a branch-free exponential that vectorises, SiLU and the sigmoid.
//!
//! `exp` is Cephes' range reduction and polynomial (within 2 ulp of `expf` over the range that
//! matters); with no branches and no library call, loops over it compile to vector code, AVX2 and
//! FMA where the processor has them.

use burn::tensor::{Tensor, TensorData};
use rayon::prelude::*;

/// e^x for x in [-87, 88], branch-free so that loops over it vectorise; its polynomial's
/// multiply-adds fused when `FMA` (only where the code is compiled for a processor with the
/// instruction: elsewhere `mul_add` is a library call).
#[inline(always)]
fn exp_with<const FMA: bool>(x: f32) -> f32 {
    let madd = |a: f32, b: f32, c: f32| if FMA { a.mul_add(b, c) } else { a * b + c };
    let x = x.clamp(-87.0, 88.0);
    // n = round(x / ln 2), by the 1.5·2^23 trick (no rounding instruction needed).
    const ROUND: f32 = 12_582_912.0;
    let t = madd(x, std::f32::consts::LOG2_E, ROUND);
    let n = t - ROUND;
    // r = x - n·ln 2, with ln 2 in two parts for precision.
    let r = madd(n, 2.121_944_4e-4, madd(n, -0.693_359_4, x));
    let mut p = 1.987_569_1e-4_f32;
    p = madd(p, r, 1.398_199_9e-3);
    p = madd(p, r, 8.333_452e-3);
    p = madd(p, r, 4.166_579_6e-2);
    p = madd(p, r, 1.666_666_5e-1);
    p = madd(p, r, 0.5);
    let y = madd(p * r, r, r) + 1.0;
    // 2^n from t's low mantissa bits, which hold n: integer operations only (an `as i32`
    // conversion saturates, which compilers do one lane at a time).
    y * f32::from_bits(t.to_bits().wrapping_sub(ROUND.to_bits()).wrapping_add(127) << 23)
}

/// An elementwise function over the exponential, its multiply-adds fused when `FMA` (a type-level
/// choice, so that each compiled loop has one form and no branch).
trait Elementwise {
    fn apply<const FMA: bool>(&self, x: f32) -> f32;
}

/// SiLU of the value plus a bias: `x / (1 + e^-x)`, `x = v + bias`.
struct BiasSilu(f32);

impl Elementwise for BiasSilu {
    #[inline(always)]
    fn apply<const FMA: bool>(&self, v: f32) -> f32 {
        let x = v + self.0;
        x / (1.0 + exp_with::<FMA>(-x))
    }
}

/// The logistic sigmoid, `1 / (1 + e^-x)`.
struct Logistic;

impl Elementwise for Logistic {
    #[inline(always)]
    fn apply<const FMA: bool>(&self, x: f32) -> f32 {
        1.0 / (1.0 + exp_with::<FMA>(-x))
    }
}

#[inline(always)]
fn map_portable<const FMA: bool>(values: &mut [f32], f: &impl Elementwise) {
    values.iter_mut().for_each(|v| *v = f.apply::<FMA>(*v));
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn map_avx2(values: &mut [f32], f: &impl Elementwise) {
    map_portable::<true>(values, f)
}

/// `v ← f(v)` for every element, compiled for AVX2 and FMA (and fusing the multiply-adds) when the
/// processor has them.
#[inline(always)]
fn map(values: &mut [f32], f: &impl Elementwise) {
    #[cfg(target_arch = "x86_64")]
    if super::Isa::avx2_fma() {
        // SAFETY: the processor has both features, checked just above.
        return unsafe { map_avx2(values, f) };
    }
    map_portable::<false>(values, f)
}

/// `v ← silu(v + bias)` for every element.
pub fn bias_silu(values: &mut [f32], bias: f32) {
    map(values, &BiasSilu(bias))
}

/// A convolution's epilogue over output values: `v ← act(v + bias) + shortcut`, with `act` SiLU
/// when `silu` (else none) and the shortcut (as many values) added after the activation, as a
/// bottleneck's is.
pub fn finish(values: &mut [f32], bias: f32, silu: bool, shortcut: Option<&[f32]>) {
    if silu {
        bias_silu(values, bias);
    } else {
        values.iter_mut().for_each(|v| *v += bias);
    }
    if let Some(add) = shortcut {
        assert_eq!(add.len(), values.len(), "a shortcut value for every output");
        values.iter_mut().zip(add).for_each(|(v, r)| *v += r);
    }
}

/// The logistic sigmoid of a tensor, computed on the host.
pub fn sigmoid<const D: usize>(t: Tensor<D>) -> Tensor<D> {
    let (device, dims) = (t.device(), t.dims());
    let mut values = super::host_values(t);
    values.par_chunks_mut(16 * 1024).for_each(|chunk| map(chunk, &Logistic));
    Tensor::from_data(TensorData::new(values, dims), &device)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_is_within_two_ulp_of_the_library() {
        let mut x = -87.0f32;
        while x < 88.0 {
            let b = x.exp();
            for (a, fused) in [(exp_with::<false>(x), false), (exp_with::<true>(x), true)] {
                assert!(((a - b) / b).abs() < 2.5e-7, "exp({x}) = {a} (fused: {fused}), library {b}");
            }
            x += 0.0137;
        }
    }

    #[test]
    fn silu_and_sigmoid_match_their_definitions() {
        let mut v: Vec<f32> = (-2000..2000).map(|i| i as f32 / 50.0).collect();
        let expected: Vec<f32> = v.iter().map(|x| x / (1.0 + (-x).exp())).collect();
        let inputs = v.clone();
        bias_silu(&mut v, 0.0);
        for (a, b) in v.iter().zip(&expected) {
            assert!((a - b).abs() <= 1e-6 * b.abs().max(1.0), "{a} vs {b}");
        }
        let device = burn::tensor::Device::flex();
        let logits = Tensor::<1>::from_data(TensorData::new(inputs.clone(), [inputs.len()]), &device);
        let probabilities = sigmoid(logits).into_data().try_into_vec::<f32>().unwrap();
        for (p, x) in probabilities.iter().zip(&inputs) {
            // Two ulp of a value near 1.
            assert!((p - 1.0 / (1.0 + (-x).exp())).abs() <= 1.2e-7, "sigmoid({x}) = {p}");
        }
        let mut extreme = vec![-1e30f32, 1e30, -100.0, 100.0];
        bias_silu(&mut extreme, 0.0);
        assert!(extreme[0].abs() < 1e-8 && extreme[1] == 1e30, "{extreme:?}");
        assert!(extreme[2].abs() < 1e-30 && extreme[3] == 100.0);
    }
}

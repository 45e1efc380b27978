//! The CPU backend's heavy operations, computed on the host over the Flex tensors' values.
//!
//! Burn Flex runs a convolution as a transpose of the whole input to NHWC (on one thread), a
//! re-flattening of the weights (on every call), im2col and a GEMM per tile, a scatter back to NCHW,
//! then a pass for the bias; SiLU as Burn tensor ops is two more passes with a scalar `expf`. Here:
//!
//! - [`conv`]: each convolution as GEMMs on NCHW planes as they lie (1×1) or on im2col columns
//!   built per tile, bias and SiLU applied per tile while it is in cache; [`profile`] times each;
//! - [`direct`]: thin 3×3 convolutions (the stem and the layers after it) computed directly, each
//!   block of outputs held in registers over every input channel and tap, no im2col;
//! - [`im2col`]: the columns a tile's GEMM multiplies, for the convolutions that are not 1×1;
//! - [`winograd`]: 3×3 convolutions of stride 1 by Winograd's F(2×2, 3×3), 16 multiplications
//!   per 2×2 outputs instead of 36, where the channels make it the faster;
//! - [`peak`]: the machine's peak GFLOP/s, measured with a GEMM microkernel on data in L1;
//! - [`blocks`]: C2f writing into the buffer its last convolution reads, SPPF's separable max
//!   pooling, the neck's upsample-and-concatenate;
//! - [`math`]: the branch-free exponential, SiLU and the sigmoid.
//!
//! The unsafe code is here and only here: the raw output pointers parallel tasks write disjoint
//! columns through, the GEMM calls, and the calls into code compiled for a processor feature after
//! checking it.

mod blocks;
mod conv;
mod direct;
mod im2col;
mod math;
pub mod peak;
mod winograd;

pub use blocks::{c2f, max_pool_same, upsample_cat};
pub use conv::{Algorithm, HostConv, LayerTime, flops, profile};
pub use peak::{Isa, peak_gflops};
pub use math::sigmoid;

use burn::tensor::Tensor;

/// A tensor's values on the host (no copy when the tensor holds them alone).
fn host_values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_into_vec::<f32>().expect("activations are f32")
}

//! The blocks of YOLOv8 around its convolutions, on the host: C2f without splits or copies, SPPF's
//! max pooling, and the neck's upsample-and-concatenate.

use burn::tensor::{Tensor, TensorData};
use rayon::prelude::*;

use super::conv::{Geometry, HostConv, Planes};

/// `cat([upsample2(a), b], 1)` on the host: `a` enlarged ×2 by nearest neighbour and `b` side by
/// side in one buffer, each written once.
pub fn upsample_cat(a: Tensor<4>, b: Tensor<4>) -> Tensor<4> {
    let device = a.device();
    let ([batch, ca, h, w], [bb, cb, h2, w2]) = (a.dims(), b.dims());
    assert!(bb == batch && h2 == 2 * h && w2 == 2 * w, "upsample_cat of {:?} and {:?}", a.dims(), b.dims());
    let a = super::host_values(a);
    let b = super::host_values(b);
    let mut out = Vec::with_capacity(batch * (ca + cb) * h2 * w2);
    for image in 0..batch {
        for row in a[image * ca * h * w..][..ca * h * w].chunks_exact(w) {
            // Each pixel twice across, then that row twice down.
            out.extend(row.iter().flat_map(|&v| [v, v]));
            out.extend_from_within(out.len() - 2 * w..);
        }
        out.extend_from_slice(&b[image * cb * h2 * w2..][..cb * h2 * w2]);
    }
    Tensor::from_data(TensorData::new(out, [batch, ca + cb, h2, w2]), &device)
}

/// A C2f block on the host. `cv1`'s output and every bottleneck's are written side by side into one
/// buffer, which is the concatenation `cv2` reads, so nothing is split, copied or concatenated; a
/// bottleneck's shortcut is added as its second convolution writes. Every convolution of a C2f has
/// stride 1 and keeps the size.
pub fn c2f(cv1: &HostConv, bottlenecks: &[(&HostConv, &HostConv)], shortcut: bool, cv2: &HostConv, x: Tensor<4>) -> Tensor<4> {
    let device = x.device();
    let [batch, c, h, w] = x.dims();
    let half = cv1.out / 2;
    let channels = cv1.out + bottlenecks.len() * half;
    let chained = cv1.out == 2 * half && bottlenecks.iter().all(|(a, b)| a.inp == half && b.inp == a.out && b.out == half);
    assert!(c == cv1.inp && chained && cv2.inp == channels, "C2f channels do not chain");
    let same = |conv: &HostConv| conv.stride == 1 && conv.k == 2 * conv.pad + 1;
    assert!(same(cv1) && same(cv2) && bottlenecks.iter().all(|(a, b)| same(a) && same(b)), "C2f convolutions keep the size");
    let input = super::host_values(x);
    let (g, plane) = (Geometry { h, w, oh: h, ow: w }, h * w);
    // Left uninitialised: cv1 and the bottlenecks write every plane before cv2 reads them.
    let mut cat = Vec::<f32>::with_capacity(batch * channels * plane);
    let base = cat.as_mut_ptr();
    let at = |channel: usize| Planes { ptr: base.wrapping_add(channel * plane), stride: channels * plane };
    // SAFETY: each convolution reads planes written before it and writes planes nothing reads
    // meanwhile: cv1 channels 0..2·half, bottleneck i reads the half before its own and writes
    // channels (2 + i)·half..(3 + i)·half, so that every plane of `cat` is written (cv1.out is
    // 2·half) before its length is set; every buffer holds all its images.
    unsafe {
        cv1.run_into(Planes { ptr: input.as_ptr().cast_mut(), stride: c * plane }, at(0), None, batch, g);
        for (i, (a, b)) in bottlenecks.iter().enumerate() {
            let last = at((1 + i) * half);
            let mut mid = Vec::<f32>::with_capacity(batch * a.out * plane);
            let mid_planes = Planes { ptr: mid.as_mut_ptr(), stride: a.out * plane };
            a.run_into(last, mid_planes, None, batch, g);
            mid.set_len(batch * a.out * plane);
            b.run_into(mid_planes, at((2 + i) * half), shortcut.then_some(last), batch, g);
        }
        cat.set_len(batch * channels * plane);
    }
    let out = cv2.run(&cat, batch, g);
    Tensor::from_data(TensorData::new(out, [batch, cv2.out, h, w]), &device)
}

/// Max pooling of every plane over a `(2r+1)²` window, stride 1, padded so the size is kept (padding
/// never wins): SPPF's pooling. Separable: the maximum along rows, then along columns.
pub fn max_pool_same(x: Tensor<4>, r: usize) -> Tensor<4> {
    let device = x.device();
    let [b, c, h, w] = x.dims();
    let mut values = super::host_values(x);
    values.par_chunks_mut(h * w).for_each(|plane| {
        let mut line = vec![0.0f32; w];
        for row in plane.chunks_exact_mut(w) {
            line.copy_from_slice(row);
            for (x, v) in row.iter_mut().enumerate() {
                *v = line[x.saturating_sub(r)..(x + r + 1).min(w)].iter().copied().fold(f32::NEG_INFINITY, f32::max);
            }
        }
        let rows: Vec<f32> = plane.to_vec();
        for y in 0..h {
            let (top, bottom) = (y.saturating_sub(r), (y + r + 1).min(h));
            let out = &mut plane[y * w..][..w];
            out.copy_from_slice(&rows[top * w..][..w]);
            for other in top + 1..bottom {
                out.iter_mut().zip(&rows[other * w..][..w]).for_each(|(o, v)| *o = o.max(*v));
            }
        }
    });
    Tensor::from_data(TensorData::new(values, [b, c, h, w]), &device)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::conv::tests::values;

    #[test]
    fn max_pooling_matches_its_definition() {
        let device = burn::tensor::Device::flex();
        let (b, c, h, w, r) = (2, 3, 7, 9, 2);
        let input = values(b * c * h * w, 3);
        let x = Tensor::<4>::from_data(TensorData::new(input.clone(), [b, c, h, w]), &device);
        let got = max_pool_same(x, r).into_data().try_into_vec::<f32>().unwrap();
        for p in 0..b * c {
            for y in 0..h {
                for x in 0..w {
                    let mut best = f32::NEG_INFINITY;
                    for yy in y.saturating_sub(r)..(y + r + 1).min(h) {
                        for xx in x.saturating_sub(r)..(x + r + 1).min(w) {
                            best = best.max(input[(p * h + yy) * w + xx]);
                        }
                    }
                    assert_eq!(got[(p * h + y) * w + x], best, "plane {p} at {y},{x}");
                }
            }
        }
    }
}

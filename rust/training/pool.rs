//! The average pool fused into the training forward: whole windows summed as torch's
//! `avg_pool2d` sums them.

use crate::kernels::simd::dispatch;

/// A non-overlapping average pool (`kernel == stride == k`, no padding) applied to the
/// outputs before they are written (a neuron layer followed by a pool), so the full-size
/// outputs are never stored. The layout of one step's slice: `[B, C, H, W]` (`channels_last:
/// false`) or `[B, H, W, C]`; `H` and `W` must be multiples of `k`. Each window is summed row by
/// row, then divided by `k*k` (the order of torch's `avg_pool2d`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pool {
    pub k: usize,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub channels_last: bool,
}

impl Pool {
    /// Elements of one band of `k` input rows (the unit a block is made of).
    pub(crate) fn band(&self) -> usize {
        self.k * self.width * if self.channels_last { self.channels } else { 1 }
    }
}

/// Average-pools whole bands of `full` into `pooled`: each window summed row by row (the
/// order of torch's `avg_pool2d`), then divided by `area = k*k`.
#[inline(always)]
fn pool_bands_impl(
    p: &Pool,
    full: &[f32],
    pooled: &mut [f32],
    band: usize,
    shrink: usize,
    area: f32,
) {
    let (k, w) = (p.k, p.width);
    pooled.fill(0.0);
    for (src, dst) in full
        .chunks_exact(band)
        .zip(pooled.chunks_exact_mut(band / shrink))
    {
        if p.channels_last {
            // band: [k rows][W][C] -> [W/k][C]; the inner loop runs over contiguous channels
            let c = p.channels;
            for row in src.chunks_exact(w * c) {
                for (j, d) in dst.chunks_exact_mut(c).enumerate() {
                    for dx in 0..k {
                        let s = &row[(j * k + dx) * c..(j * k + dx + 1) * c];
                        d.iter_mut().zip(s).for_each(|(a, &x)| *a += x);
                    }
                }
            }
        } else {
            // band: [k rows][W] -> [W/k]
            for row in src.chunks_exact(w) {
                for (d, win) in dst.iter_mut().zip(row.chunks_exact(k)) {
                    for &x in win {
                        *d += x;
                    }
                }
            }
        }
    }
    pooled.iter_mut().for_each(|q| *q /= area);
}

dispatch! {
    /// [`pool_bands_impl`], AVX2 when available.
    pub fn pool_bands[](p: &Pool, full: &[f32], pooled: &mut [f32], band: usize, shrink: usize, area: f32)
        => pool_bands_impl
    where []
}

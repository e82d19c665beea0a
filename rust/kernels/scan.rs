//! Scans of whole values: the nonzero indices, the bias fill.

use super::simd::dispatch;
use crate::numeric::Value;

#[inline(always)]
fn collect_nonzero_impl<V: Value>(x: &[V], nz: &mut Vec<u32>) {
    nz.clear();
    const CH: usize = 64;
    let mut chunks = x.chunks_exact(CH);
    let mut base = 0u32;
    for ch in chunks.by_ref() {
        // A bit mask of the chunk (branch-free, vectorises), then one iteration per set bit.
        let mut m = 0u64;
        for (j, v) in ch.iter().enumerate() {
            m |= (v.is_nonzero() as u64) << j;
        }
        while m != 0 {
            nz.push(base + m.trailing_zeros());
            m &= m - 1;
        }
        base += CH as u32;
    }
    for (j, v) in chunks.remainder().iter().enumerate() {
        if v.is_nonzero() {
            nz.push(base + j as u32);
        }
    }
}

dispatch! {
    /// Collects the indices of the nonzero elements of `x` (ascending) into `nz`.
    pub fn collect_nonzero[V](x: &[V], nz: &mut Vec<u32>) => collect_nonzero_impl, collect_nonzero_avx2
    where [V: Value]
}

/// Sets `acc` to the bias repeated over positions (`bias.len()` channels) or to zero.
pub fn fill_bias<A: Copy + Default>(acc: &mut [A], bias: Option<&[A]>) {
    match bias {
        None => acc.fill(A::default()),
        Some(b) if !b.is_empty() => {
            for ch in acc.chunks_exact_mut(b.len()) {
                ch.copy_from_slice(b);
            }
        }
        Some(_) => acc.fill(A::default()),
    }
}

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
    pub fn collect_nonzero[V](x: &[V], nz: &mut Vec<u32>) => collect_nonzero_impl
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

/// Sum over the active indices `nz` (ascending channels-last indices, `c` channels) of the
/// fan-out of their position (`fanout[position]`), without a division per element.
pub(crate) fn fanout_sum(nz: &[u32], c: usize, fanout: &[u32]) -> u64 {
    let mut p = 0usize;
    let mut end = c as u64;
    let mut s = 0u64;
    for &i in nz {
        while i as u64 >= end {
            p += 1;
            end += c as u64;
        }
        s += fanout.get(p).copied().unwrap_or(0) as u64;
    }
    s
}

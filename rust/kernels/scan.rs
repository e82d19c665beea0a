//! Scans of whole values: the nonzero indices, the bias fill.

use super::simd::dispatch;
use crate::numeric::Value;

#[inline(always)]
fn append_nonzero_impl<V: Value>(x: &[V], base: u32, nz: &mut Vec<u32>) {
    const CH: usize = 64;
    let mut chunks = x.chunks_exact(CH);
    let mut base = base;
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
    /// [`append_nonzero`] compiled from the portable body (AVX2 twin included).
    pub fn append_nonzero_portable[V](x: &[V], base: u32, nz: &mut Vec<u32>) => append_nonzero_impl
    where [V: Value]
}

/// Collects the indices of the nonzero elements of `x` (ascending) into `nz`. With AVX-512 a
/// compare gives 16 elements' mask at once and a compress writes their indices.
#[inline]
pub(crate) fn collect_nonzero<V: Value>(x: &[V], nz: &mut Vec<u32>) {
    nz.clear();
    append_nonzero(x, 0, nz);
}

/// Appends `base + i` for every nonzero `x[i]` (ascending) to `nz`: the spike list of a block
/// of a larger array that starts at element `base`.
#[inline]
pub(crate) fn append_nonzero<V: Value>(x: &[V], base: u32, nz: &mut Vec<u32>) {
    #[cfg(target_arch = "x86_64")]
    {
        if super::simd::level() == super::simd::Level::Avx512 {
            // SAFETY: the CPU has AVX-512 F (checked by `level`).
            unsafe { append_nonzero_avx512(V::bits(x), V::NONZERO_BITS, base, nz) };
            return;
        }
    }
    append_nonzero_portable(x, base, nz)
}

/// The AVX-512 body of [`append_nonzero`]: element `i` of `bits` is nonzero when
/// `bits[i] & mask != 0`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn append_nonzero_avx512(bits: &[u32], mask: u32, base: u32, nz: &mut Vec<u32>) {
    use std::arch::x86_64::*;
    // 16 more than can be written: each chunk stores a whole vector (its compressed indices
    // first), which is faster than a masked compress-store to memory.
    let start = nz.len();
    nz.reserve(bits.len() + 16);
    let out = nz.as_mut_ptr().add(start);
    let mut count = 0usize;
    let m = _mm512_set1_epi32(mask as i32);
    let sixteen = _mm512_set1_epi32(16);
    let mut idx = _mm512_add_epi32(
        _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
        _mm512_set1_epi32(base as i32),
    );
    let mut chunks = bits.chunks_exact(16);
    for ch in chunks.by_ref() {
        // SAFETY: `ch` holds 16 u32 (an unaligned 64-byte load); `nz` has room for
        // `start + bits.len() + 16` indices and `count + 16 <= bits.len()` here.
        let v = _mm512_loadu_si512(ch.as_ptr().cast());
        let k = _mm512_test_epi32_mask(v, m);
        _mm512_storeu_si512(out.add(count).cast(), _mm512_maskz_compress_epi32(k, idx));
        count += k.count_ones() as usize;
        idx = _mm512_add_epi32(idx, sixteen);
    }
    let rest = bits.len() - chunks.remainder().len();
    for (j, &b) in chunks.remainder().iter().enumerate() {
        if b & mask != 0 {
            // SAFETY: as above, `count < bits.len()`.
            *out.add(count) = base + (rest + j) as u32;
            count += 1;
        }
    }
    // SAFETY: the `count` elements after `start` were written above.
    nz.set_len(start + count);
}

/// Sets `acc` to the bias repeated over positions (`bias.len()` channels) or to zero.
pub(crate) fn fill_bias<A: Copy + Default>(acc: &mut [A], bias: Option<&[A]>) {
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

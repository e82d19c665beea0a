//! Dense int8 conv2d with AVX-512 VNNI (`vpdpbusd`: four u8 x i8 products summed into each
//! int32 lane), for steps whose inputs are dense enough that visiting every window costs less
//! than listing the active ones.
//!
//! The input of a step is packed to unsigned bytes with a zero border (`[h + 2ph][w + 2pw][cp]`,
//! `cp` = channels rounded up to 4), the kernel once at compile time to one contiguous slice
//! per group of output channels (64 while they fit, then 16; see [`group_width`]),
//! `[group][ky][kx][cp / 4][group width][4]`. For every output position and every block of 16 output channels
//! the sum runs over the window's taps and groups of four input channels; positions whose
//! channels are all zero are skipped. Integer sums do not depend on the order of their terms,
//! so when no partial sum can leave int32 (the caller's bound, the same one the other conv
//! kernels rely on) the results equal theirs exactly. Inputs must lie in `0..=255`.

use std::sync::OnceLock;

use super::conv::Geom;

/// Output channels per vector (int32 lanes of a 512-bit register).
const LANES: usize = 16;

/// Vectors of output channels per group (the kernel's register block).
const GROUP_VECTORS: usize = 4;

/// The width (output channels) of the group starting at channel `off` of `co`: four vectors
/// while they fit, then one (`co` is a multiple of [`LANES`]).
fn group_width(off: usize, co: usize) -> usize {
    if off + GROUP_VECTORS * LANES <= co {
        GROUP_VECTORS * LANES
    } else {
        LANES
    }
}

/// Whether this CPU has AVX-512 VNNI and the chosen SIMD level is AVX-512.
pub(crate) fn available() -> bool {
    cpu_has() && super::simd::level() == super::simd::Level::Avx512
}

/// Whether this CPU has AVX-512 VNNI (whatever the chosen level).
pub(crate) fn cpu_has() -> bool {
    static HAS: OnceLock<bool> = OnceLock::new();
    *HAS.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            std::is_x86_feature_detected!("avx512f")
                && std::is_x86_feature_detected!("avx512bw")
                && std::is_x86_feature_detected!("avx512vnni")
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    })
}

/// Input channels padded to a multiple of 4 (one `vpdpbusd` group).
pub(crate) fn padded_channels(c: usize) -> usize {
    c.div_ceil(4) * 4
}

/// Whether a conv of this geometry can take the dense kernel: output channels in whole
/// vectors, at least 8 input channels (so padding them to 4 costs little) and a padded input
/// of at most [`padded_bytes_bound`].
pub(crate) fn fits(g: &Geom) -> bool {
    let padded = (g.h + 2 * g.ph)
        .saturating_mul(g.w + 2 * g.pw)
        .saturating_mul(padded_channels(g.c));
    g.co.is_multiple_of(LANES)
        && g.co > 0
        && g.c >= 8
        && padded <= padded_bytes_bound(g.c * g.h * g.w)
}

/// The most bytes a packed input of `n` values may take (the memory limit counts this).
pub(crate) fn padded_bytes_bound(n: usize) -> usize {
    n.saturating_mul(2).saturating_add(1 << 16)
}

/// Repacks an int8 kernel stored `[c][kh][kw][co]` to one contiguous slice per output channel
/// group (at channel `off`, width `gw` = [`group_width`]): `[ky][kx][cp/4][gw][4]` starting at
/// byte `off * kh * kw * cp` (channels past `c` are zero). Contiguous slices stream at full
/// bandwidth; interleaved groups would be read in 256-byte pieces at a stride of `4 * co`.
pub(crate) fn pack_kernel(k: &[i8], g: &Geom) -> Vec<i8> {
    let cp = padded_channels(g.c);
    let (co, taps) = (g.co, g.kh * g.kw);
    let mut out = vec![0i8; taps * cp * co];
    let mut off = 0;
    while off < co {
        let gw = group_width(off, co);
        let base = off * taps * cp;
        for c in 0..g.c {
            for tap in 0..taps {
                for o in 0..gw {
                    let src = (c * taps + tap) * co + off + o;
                    let dst = base + ((tap * (cp / 4) + c / 4) * gw + o) * 4 + c % 4;
                    if let (Some(d), Some(&s)) = (out.get_mut(dst), k.get(src)) {
                        *d = s;
                    }
                }
            }
        }
        off += gw;
    }
    out
}

/// A step's input as the dense kernel reads it.
pub(crate) struct Packed<'a> {
    /// `[h + 2ph][w + 2pw][cp]` bytes, zero border.
    pub xp: &'a [u8],
    /// Per padded position: whether any of its channels is nonzero.
    pub occ: &'a [u8],
}

/// Packs channels-last int32 input `x` (`[h][w][c]`) into `xp`/`occ` (resized and zeroed here)
/// and returns the SOPs per output channel (fan-out of every nonzero input) and the largest
/// value, or `None` when a value is outside `0..=255` (the kernel cannot take it).
pub(crate) fn pack_input(
    x: &[i32],
    g: &Geom,
    fanout: &[u32],
    xp: &mut Vec<u8>,
    occ: &mut Vec<u8>,
) -> Option<(u64, i64)> {
    let cp = padded_channels(g.c);
    let (hp, wp) = (g.h + 2 * g.ph, g.w + 2 * g.pw);
    xp.clear();
    xp.resize(hp * wp * cp, 0);
    occ.clear();
    occ.resize(hp * wp, 0);
    pack_rows(x, g, fanout, xp, occ)
}

#[inline(always)]
fn pack_rows_impl(
    x: &[i32],
    g: &Geom,
    fanout: &[u32],
    xp: &mut [u8],
    occ: &mut [u8],
) -> Option<(u64, i64)> {
    let (c, cp, wp) = (g.c, padded_channels(g.c), g.w + 2 * g.pw);
    let mut fan = 0u64;
    let mut lo = 0i32;
    let mut hi = 0i32;
    for (p, row) in x.chunks_exact(c).enumerate().take(g.h * g.w) {
        let pp = (p / g.w + g.ph) * wp + p % g.w + g.pw;
        let dst = xp.get_mut(pp * cp..pp * cp + c)?;
        let mut n = 0u32;
        for (d, &v) in dst.iter_mut().zip(row) {
            *d = v as u8;
            n += (v != 0) as u32;
            lo = lo.min(v);
            hi = hi.max(v);
        }
        occ[pp] = (n != 0) as u8;
        fan += n as u64 * fanout.get(p).copied().unwrap_or(0) as u64;
    }
    if lo < 0 || hi > 255 {
        return None;
    }
    Some((fan, hi as i64))
}

super::simd::dispatch! {
    /// The body of [`pack_input`] (buffers already sized and zeroed).
    pub fn pack_rows[](x: &[i32], g: &Geom, fanout: &[u32], xp: &mut [u8], occ: &mut [u8]) -> Option<(u64, i64)>
        => pack_rows_impl
    where []
}

/// Output positions from `first` whose outputs fit in `len` values (`co` each).
fn positions_in(len: usize, g: &Geom, first: usize) -> usize {
    (len / g.co.max(1)).min((g.ho * g.wo).saturating_sub(first))
}

/// Writes to `acc` (the outputs of positions `first..`, channels-last, `co` each) the bias (or
/// 0) plus the window sums of the packed input through the packed kernel `wp`.
///
/// Panics if the CPU lacks AVX-512 VNNI ([`cpu_has`]). Callers choose it only when it is
/// [`available`]; the assertion asks only what safety needs, the CPU's features, not the
/// chosen SIMD level, which another thread may change at any time.
pub(crate) fn conv_dense(
    acc: &mut [i32],
    wp: &[i8],
    g: &Geom,
    inp: &Packed<'_>,
    bias: Option<&[i32]>,
    first: usize,
) {
    assert!(cpu_has(), "conv_dense needs AVX-512 VNNI");
    let n_pos = positions_in(acc.len(), g, first);
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `acc` holds `n_pos * co` values and is borrowed exclusively; `cpu_has` checked
    // the CPU features the function is compiled with.
    unsafe {
        x86::conv_dense(acc.as_mut_ptr(), n_pos, wp, g, inp, bias, first, (0, g.co))
    }
}

/// The output channel ranges (whole groups, see [`group_width`]) of `parts` parts of about
/// equal width; empty ranges where there are fewer groups than parts.
pub(crate) fn channel_parts(co: usize, parts: usize) -> Vec<(usize, usize)> {
    let parts = parts.max(1);
    let mut out = vec![(co, co); parts];
    let mut off = 0;
    while off < co {
        let k = off * parts / co;
        let gw = group_width(off, co);
        out[k].0 = out[k].0.min(off);
        out[k].1 = off + gw;
        off += gw;
    }
    for r in &mut out {
        if r.0 >= r.1 {
            *r = (0, 0);
        }
    }
    out
}

/// Number of channel groups of a conv with `co` output channels.
pub(crate) fn channel_groups(co: usize) -> usize {
    let (mut off, mut n) = (0, 0);
    while off < co {
        off += group_width(off, co);
        n += 1;
    }
    n
}

/// Runs a job for part indices `0..parts` (see [`conv_dense_by_channels`]).
pub(crate) type PartRunner<'a> = dyn Fn(&(dyn Fn(usize) + Sync)) + 'a;

/// A pointer that may cross threads: the parts of [`conv_dense_by_channels`] write disjoint
/// channels through it.
struct SharedOut(*mut i32);
// SAFETY: used only by `conv_dense_by_channels`, whose parts write disjoint channels, each
// part at most once (claimed), all within the exclusive borrow of the output.
unsafe impl Sync for SharedOut {}

/// [`conv_dense`] over all output positions, split into `parts` ranges of output channels
/// (whole groups): `run` is handed a job and must call it for part indices `0..parts`, from
/// any threads, and return only when those calls have returned. Each part's kernel slice is
/// read by one thread only, where a split by positions would have every thread stream the
/// whole kernel. A part `run` does not call is run here afterwards.
pub(crate) fn conv_dense_by_channels(
    acc: &mut [i32],
    wp: &[i8],
    g: &Geom,
    inp: &Packed<'_>,
    bias: Option<&[i32]>,
    parts: usize,
    run: &PartRunner<'_>,
) {
    use std::sync::atomic::{AtomicBool, Ordering};
    assert!(cpu_has(), "conv_dense needs AVX-512 VNNI");
    let n_pos = positions_in(acc.len(), g, 0);
    let ranges = channel_parts(g.co, parts);
    let claimed: Vec<AtomicBool> = ranges.iter().map(|_| AtomicBool::new(false)).collect();
    let out = SharedOut(acc.as_mut_ptr());
    let job = |k: usize| {
        let (Some(&r), Some(c)) = (ranges.get(k), claimed.get(k)) else {
            return;
        };
        if c.swap(true, Ordering::AcqRel) || r.0 >= r.1 {
            return;
        }
        let out = &out;
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `acc` holds `n_pos * co` values and stays borrowed until every part has
        // returned (`run`'s contract, and the loop below); parts write disjoint channel
        // ranges, each part once (claimed); `cpu_has` was checked above.
        unsafe {
            x86::conv_dense(out.0, n_pos, wp, g, inp, bias, 0, r)
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = (out, r);
    };
    run(&job);
    for k in 0..ranges.len() {
        job(k);
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{group_width, padded_channels, Geom, Packed, GROUP_VECTORS, LANES};

    /// `P` output positions (`pos`: each one's window origin in the padded input, in positions),
    /// `NB` vectors of output channels starting at `off`: `P * NB` independent sums, so that the
    /// dot-product units are not waiting on one chain, and every kernel vector loaded serves `P`
    /// positions.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    unsafe fn block<const P: usize, const NB: usize>(
        out: *mut i32,
        wp: &[i8],
        g: &Geom,
        inp: &Packed<'_>,
        bias: Option<&[i32]>,
        pos: &[usize; P],
        off: usize,
    ) {
        let (cp, co, wpd) = (padded_channels(g.c), g.co, g.w + 2 * g.pw);
        let (groups, gw) = (cp / 4, NB * LANES);
        let mut b = [_mm512_setzero_si512(); NB];
        if let Some(bs) = bias {
            for (k, r) in b.iter_mut().enumerate() {
                *r = _mm512_loadu_si512(bs.as_ptr().add(off + k * LANES).cast());
            }
        }
        let mut a = [b; P];
        let xp = inp.xp.as_ptr();
        let w0 = wp.as_ptr();
        for ky in 0..g.kh {
            for kx in 0..g.kw {
                let d = ky * wpd + kx;
                let mut any = 0u8;
                for &o in pos {
                    any |= *inp.occ.get_unchecked(o + d);
                }
                if any == 0 {
                    continue;
                }
                let tap = ky * g.kw + kx;
                let wt = w0.add(off * g.kh * g.kw * cp + tap * groups * gw * 4);
                for q in 0..groups {
                    let wq = wt.add(q * gw * 4);
                    let mut wv = [_mm512_setzero_si512(); NB];
                    for (k, v) in wv.iter_mut().enumerate() {
                        *v = _mm512_loadu_si512(wq.add(k * LANES * 4).cast());
                    }
                    for (ap, &o) in a.iter_mut().zip(pos) {
                        let xs = xp.add((o + d) * cp + q * 4);
                        let xv = _mm512_set1_epi32(std::ptr::read_unaligned(xs.cast::<i32>()));
                        for (r, &w) in ap.iter_mut().zip(&wv) {
                            *r = _mm512_dpbusd_epi32(*r, xv, w);
                        }
                    }
                }
            }
        }
        for (p, ap) in a.iter().enumerate() {
            for (k, r) in ap.iter().enumerate() {
                let d = out.add(p * co + off + k * LANES);
                _mm512_storeu_si512(d.cast(), *r);
            }
        }
    }

    /// The outputs `first + n0 .. first + n0 + P` (`P` consecutive output positions, which may
    /// span rows; `acc` points at position `first`'s outputs) for the channel group at `off`.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn positions<const P: usize, const NB: usize>(
        acc: *mut i32,
        wp: &[i8],
        g: &Geom,
        inp: &Packed<'_>,
        bias: Option<&[i32]>,
        first: usize,
        n0: usize,
        off: usize,
    ) {
        let wpd = g.w + 2 * g.pw;
        let mut pos = [0usize; P];
        for (p, o) in pos.iter_mut().enumerate() {
            let k = first + n0 + p;
            *o = (k / g.wo) * g.sh * wpd + (k % g.wo) * g.sw;
        }
        block::<P, NB>(acc.add(n0 * g.co), wp, g, inp, bias, &pos, off);
    }

    /// Outputs of positions `first .. first + n_pos` (written from `acc`, `co` values each),
    /// channels `lo .. hi` (group starts, see [`group_width`]).
    ///
    /// Safety: `acc` is valid for writes of `n_pos * co` values, and no other thread touches
    /// channels `lo .. hi` of them meanwhile; the CPU has AVX-512 VNNI.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn conv_dense(
        acc: *mut i32,
        n_pos: usize,
        wp: &[i8],
        g: &Geom,
        inp: &Packed<'_>,
        bias: Option<&[i32]>,
        first: usize,
        (lo, hi): (usize, usize),
    ) {
        let co = g.co;
        let (hp, wpd, cp) = (g.h + 2 * g.ph, g.w + 2 * g.pw, padded_channels(g.c));
        // Every read below stays inside these lengths: the window of any output lies inside the
        // padded input, and the packed kernel has `kh * kw * cp * co` entries.
        assert!(inp.xp.len() >= hp * wpd * cp && inp.occ.len() >= hp * wpd);
        assert!(wp.len() >= g.kh * g.kw * cp * co);
        assert!(bias.is_none_or(|b| b.len() >= co));
        assert!(g.ho == 0 || (g.ho - 1) * g.sh + g.kh <= hp);
        assert!(g.wo == 0 || (g.wo - 1) * g.sw + g.kw <= wpd);
        assert!(first + n_pos <= g.ho * g.wo && hi <= co);
        // Six positions by four vectors: 24 accumulators, four kernel vectors and a broadcast
        // in the 32 registers; each kernel byte loaded serves six positions (the kernel slice of
        // a vector group outgrows L1 from 128 input channels, and L2's bandwidth then bounds
        // the dot products). Measured against 4 x 4, 8 x 2, 8 x 3 and 12 x 2: ResNet-18 -4 %,
        // VGG-11 -11 % against 4 x 4; the others slower.
        drive(acc, wp, g, inp, bias, first, n_pos, (lo, hi));
    }

    /// Every output position from `first` (`n_pos` of them) and every output channel: groups
    /// of output channels outermost (one group's kernel slice stays in cache while all
    /// positions pass through it; positions outermost would stream the whole kernel, 2.4 MB at
    /// 512 -> 512, once per block), then blocks of six positions, which may span output rows,
    /// and one block for the rest (1 to `PB - 1` positions).
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn drive(
        acc: *mut i32,
        wp: &[i8],
        g: &Geom,
        inp: &Packed<'_>,
        bias: Option<&[i32]>,
        first: usize,
        n_pos: usize,
        (lo, hi): (usize, usize),
    ) {
        const NB: usize = GROUP_VECTORS;
        const PB: usize = 6; // the remainders below are 1..PB
        let mut off = lo;
        while off < hi {
            let gw = group_width(off, g.co);
            let mut n = 0;
            while n + PB <= n_pos {
                if gw == NB * LANES {
                    positions::<PB, NB>(acc, wp, g, inp, bias, first, n, off);
                } else {
                    positions::<PB, 1>(acc, wp, g, inp, bias, first, n, off);
                }
                n += PB;
            }
            macro_rules! rest {
                ($($r:literal)*) => {
                    match n_pos - n {
                        $($r => if gw == NB * LANES {
                            positions::<$r, NB>(acc, wp, g, inp, bias, first, n, off)
                        } else {
                            positions::<$r, 1>(acc, wp, g, inp, bias, first, n, off)
                        },)*
                        _ => {}
                    }
                };
            }
            rest!(1 2 3 4 5);
            off += gw;
        }
    }
}

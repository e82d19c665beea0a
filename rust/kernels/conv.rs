//! Conv2d over the active inputs, two ways with the same result:
//!
//! * scatter: the kernel patch of each active input is added into the channels-last outputs it
//!   reaches (cheap when few inputs are active: work only where events are);
//! * gather: output-stationary; for each output position the active inputs of its window are
//!   listed (their kernel rows and values) and streamed through blocks of output channels kept
//!   in registers, as the linear kernel does (cheap when many are active: no accumulator
//!   traffic through memory).
//!
//! Every output element receives its terms in the same order either way: ascending input index
//! (for a fixed output, a window's taps in (ky, kx) order visit input positions in ascending
//! order, and the channels of a position are listed in ascending order), so float results are
//! bit-identical between the two.

use super::simd::dispatch;
use crate::numeric::{Mac, Value, Weight};

/// Geometry of a conv2d or pool node (input `[h, w, c]` channels-last, output `[ho, wo, co]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Geom {
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub co: usize,
    pub ho: usize,
    pub wo: usize,
    pub kh: usize,
    pub kw: usize,
    pub sh: usize,
    pub sw: usize,
    pub ph: usize,
    pub pw: usize,
}

impl Geom {
    /// Output rows (or columns) whose window contains input row `i`:
    /// `o*s - p <= i < o*s - p + k`, clipped to `[0, n_out)`. Returns a half-open range.
    #[inline(always)]
    pub(crate) fn out_range(
        i: usize,
        k: usize,
        s: usize,
        p: usize,
        n_out: usize,
    ) -> (usize, usize) {
        let ip = i + p; // o*s <= ip  and  ip < o*s + k
        let hi = ip / s + 1; // o <= ip / s
        let lo = if ip + 1 > k {
            (ip + 1 - k).div_ceil(s)
        } else {
            0
        };
        (lo.min(n_out), hi.min(n_out))
    }

    /// Number of output positions whose window contains input position `(y, x)`.
    pub(crate) fn fanout(&self, y: usize, x: usize) -> usize {
        let (a, b) = Self::out_range(y, self.kh, self.sh, self.ph, self.ho);
        let (c, d) = Self::out_range(x, self.kw, self.sw, self.pw, self.wo);
        b.saturating_sub(a) * d.saturating_sub(c)
    }
}

#[inline(always)]
fn conv_scatter_impl<A, W>(acc: &mut [A], k: &[W], g: &Geom, items: &[u32], xs: Option<&[A]>)
where
    A: Mac<W>,
    W: Weight,
{
    let co = g.co;
    for (n, &idx) in items.iter().enumerate() {
        let idx = idx as usize;
        let c = idx % g.c;
        let pos = idx / g.c;
        let (iy, ix) = (pos / g.w, pos % g.w);
        let (oy0, oy1) = Geom::out_range(iy, g.kh, g.sh, g.ph, g.ho);
        let (ox0, ox1) = Geom::out_range(ix, g.kw, g.sw, g.pw, g.wo);
        let x = xs.map(|v| v[n]);
        for oy in oy0..oy1 {
            let ky = iy + g.ph - oy * g.sh;
            for ox in ox0..ox1 {
                let kx = ix + g.pw - ox * g.sw;
                let o = (oy * g.wo + ox) * co;
                let kb = ((c * g.kh + ky) * g.kw + kx) * co;
                let (Some(dst), Some(src)) = (acc.get_mut(o..o + co), k.get(kb..kb + co)) else {
                    continue;
                };
                match x {
                    None => {
                        for (a, &wv) in dst.iter_mut().zip(src) {
                            *a = a.add_w(wv);
                        }
                    }
                    Some(x) => {
                        for (a, &wv) in dst.iter_mut().zip(src) {
                            *a = a.add_xw(x, wv);
                        }
                    }
                }
            }
        }
    }
}

dispatch! {
    /// Scatters input elements `items` (channels-last indices into `[h, w, c]`, values `xs`,
    /// or 1 when `None`) through a kernel stored `[c][kh][kw][co]` into the channels-last
    /// accumulator `[ho, wo, co]`. Windows that leave the padded border are clipped.
    pub fn conv_scatter[A, W](acc: &mut [A], k: &[W], g: &Geom, items: &[u32], xs: Option<&[A]>)
        => conv_scatter_impl
    where [A: Mac<W>, W: Weight]
}

/// One pass over the active inputs `nz` (ascending channels-last indices into `x`, `c`
/// channels, `positions` = h*w) that a conv needs before it runs:
///
/// * `starts[p]` = the first index into `nz` at or after position `p`, for `p` in
///   `0..=positions` (position `p`'s active channels are `nz[starts[p]..starts[p + 1]]`);
/// * returns the fan-out sum (output positions reached, over all active inputs: the SOPs per
///   output channel), max |x| over the active values, and whether all of them are 1
///   (`binary`: the caller knows they are, from spikes).
pub(crate) fn scan_active<V: Value>(
    nz: &[u32],
    x: &[V],
    c: usize,
    positions: usize,
    fanout: &[u32],
    binary: bool,
    starts: &mut Vec<u32>,
) -> (u64, i64, bool) {
    starts.clear();
    starts.reserve(positions + 1);
    let mut k = 0usize;
    let mut fan = 0u64;
    for (p, &f) in fanout.iter().enumerate().take(positions) {
        starts.push(k as u32);
        let end = ((p + 1) * c) as u32;
        let k0 = k;
        while k < nz.len() && nz[k] < end {
            k += 1;
        }
        fan += (k - k0) as u64 * f as u64;
    }
    starts.push(k as u32);
    if binary {
        return (fan, 1, true);
    }
    let mut unit = true;
    let mut max_abs = 0i64;
    for &i in nz {
        let v = x[i as usize];
        unit &= v == V::ONE;
        max_abs = max_abs.max(v.abs_i64());
    }
    (fan, max_abs, unit)
}

/// The active inputs of one step as the gather reads them: the dense values `x`, the active
/// indices `nz` (ascending), where each position's entries start (`starts`, from
/// [`scan_active`]), and whether every active value is 1 (`unit`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Active<'a, A> {
    pub x: &'a [A],
    pub nz: &'a [u32],
    pub starts: &'a [u32],
    pub unit: bool,
}

/// The window of output position `(oy, ox)`: `(input position, tap index ky*kw + kx)` of every
/// tap inside the (unpadded) input, in (ky, kx) order. Returns how many were written.
#[inline(always)]
fn window_taps(g: &Geom, oy: usize, ox: usize, taps: &mut [(u32, u32)]) -> usize {
    let mut n = 0;
    for ky in 0..g.kh {
        let iy = oy * g.sh + ky;
        if iy < g.ph || iy - g.ph >= g.h {
            continue;
        }
        for kx in 0..g.kw {
            let ix = ox * g.sw + kx;
            if ix < g.pw || ix - g.pw >= g.w {
                continue;
            }
            if let Some(t) = taps.get_mut(n) {
                *t = (
                    ((iy - g.ph) * g.w + ix - g.pw) as u32,
                    (ky * g.kw + kx) as u32,
                );
                n += 1;
            }
        }
    }
    n
}

/// Writes to `dst` (output channels `off..off+B` of one position) the bias (or 0) plus every
/// active input of the window `taps` times its kernel row, in ascending input order.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn gather_block<const B: usize, A, W>(
    dst: &mut [A; B],
    k: &[W],
    g: &Geom,
    off: usize,
    taps: &[(u32, u32)],
    inp: Active<'_, A>,
    bias: Option<&[A]>,
) where
    A: Mac<W>,
    W: Weight,
{
    let (c, co, area) = (g.c, g.co, g.kh * g.kw);
    let Active {
        x,
        nz,
        starts,
        unit,
    } = inp;
    let mut t: [A; B] = match bias
        .and_then(|b| b.get(off..))
        .and_then(|b| b.first_chunk::<B>())
    {
        Some(b) => *b,
        None => [A::default(); B],
    };
    for &(p, tap) in taps {
        let (p, tap) = (p as usize, tap as usize);
        let (a, b) = (starts[p] as usize, starts[p + 1] as usize);
        let base = p * c;
        for &i in nz.get(a..b).unwrap_or(&[]) {
            let i = i as usize;
            let row = (i - base) * area + tap;
            let Some(wr) = k.get(row * co + off..).and_then(|s| s.first_chunk::<B>()) else {
                continue;
            };
            if unit {
                for (s, &wv) in t.iter_mut().zip(wr) {
                    *s = s.add_w(wv);
                }
            } else {
                let xv = x[i];
                for (s, &wv) in t.iter_mut().zip(wr) {
                    *s = s.add_xw(xv, wv);
                }
            }
        }
    }
    *dst = t;
}

/// [`gather_block`] over every output channel of one position: blocks of 64, 16, 8 channels
/// kept in registers, then single channels.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn gather_position<A, W>(
    out: &mut [A],
    k: &[W],
    g: &Geom,
    taps: &[(u32, u32)],
    inp: Active<'_, A>,
    bias: Option<&[A]>,
) where
    A: Mac<W>,
    W: Weight,
{
    let mut off = 0;
    macro_rules! blocks {
        ($b:literal) => {
            while let Some(dst) = out.get_mut(off..).and_then(|s| s.first_chunk_mut::<$b>()) {
                gather_block::<$b, A, W>(dst, k, g, off, taps, inp, bias);
                off += $b;
            }
        };
    }
    blocks!(64);
    blocks!(16);
    blocks!(8);
    blocks!(1);
}

/// [`gather_block`] for int8 weights and int32 values with 16-bit partial sums: `flush` terms
/// at most go into the i16 lanes before they are added to the i32 sums, so that no partial sum
/// leaves the i16 range (`flush * max|x| * max|w| <= i16::MAX`, the caller's bound). Integer
/// sums do not depend on grouping: the result equals [`gather_block`]'s.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn gather_block_i16<const B: usize>(
    dst: &mut [i32; B],
    k: &[i8],
    g: &Geom,
    off: usize,
    taps: &[(u32, u32)],
    inp: Active<'_, i32>,
    bias: Option<&[i32]>,
    flush: usize,
) {
    let (c, co, area) = (g.c, g.co, g.kh * g.kw);
    let Active {
        x,
        nz,
        starts,
        unit,
    } = inp;
    let mut t: [i32; B] = match bias
        .and_then(|b| b.get(off..))
        .and_then(|b| b.first_chunk::<B>())
    {
        Some(b) => *b,
        None => [0; B],
    };
    let mut h = [0i16; B];
    let mut n = 0usize;
    for &(p, tap) in taps {
        let (p, tap) = (p as usize, tap as usize);
        let (a, b) = (starts[p] as usize, starts[p + 1] as usize);
        let base = p * c;
        for &i in nz.get(a..b).unwrap_or(&[]) {
            let i = i as usize;
            let row = (i - base) * area + tap;
            let Some(wr) = k.get(row * co + off..).and_then(|s| s.first_chunk::<B>()) else {
                continue;
            };
            if unit {
                for (s, &wv) in h.iter_mut().zip(wr) {
                    *s = s.wrapping_add(wv as i16);
                }
            } else {
                let xv = x[i] as i16;
                for (s, &wv) in h.iter_mut().zip(wr) {
                    *s = s.wrapping_add(xv.wrapping_mul(wv as i16));
                }
            }
            n += 1;
            if n == flush {
                for (a, s) in t.iter_mut().zip(h.iter_mut()) {
                    *a = a.wrapping_add(*s as i32);
                    *s = 0;
                }
                n = 0;
            }
        }
    }
    for (a, &s) in t.iter_mut().zip(&h) {
        *a = a.wrapping_add(s as i32);
    }
    *dst = t;
}

#[inline(always)]
fn conv_gather_i16_impl(
    acc: &mut [i32],
    k: &[i8],
    g: &Geom,
    inp: Active<'_, i32>,
    bias: Option<&[i32]>,
    first: usize,
    flush: usize,
) {
    let mut taps = [(0u32, 0u32); 64];
    let mut big = Vec::new();
    let taps: &mut [(u32, u32)] = if g.kh * g.kw <= taps.len() {
        &mut taps
    } else {
        big.resize(g.kh * g.kw, (0u32, 0u32));
        &mut big
    };
    for (n, out) in acc.chunks_exact_mut(g.co).enumerate() {
        let o = first + n;
        let nt = window_taps(g, o / g.wo, o % g.wo, taps);
        let taps = &taps[..nt];
        let mut off = 0;
        macro_rules! blocks {
            ($b:literal) => {
                while let Some(dst) = out.get_mut(off..).and_then(|s| s.first_chunk_mut::<$b>()) {
                    gather_block_i16::<$b>(dst, k, g, off, taps, inp, bias, flush);
                    off += $b;
                }
            };
        }
        blocks!(64);
        blocks!(32);
        blocks!(16);
        blocks!(1);
    }
}

dispatch! {
    /// [`conv_gather`] for int8 weights and int32 values, summing each register block in 16-bit
    /// lanes (twice the lanes per instruction) and adding them to the int32 sums every `flush`
    /// terms. Exact when `flush * max|x| * max|w| <= i16::MAX` (the caller checks) and the
    /// int32 sums cannot overflow (the node's bound).
    pub fn conv_gather_i16[](acc: &mut [i32], k: &[i8], g: &Geom, inp: Active<'_, i32>, bias: Option<&[i32]>, first: usize, flush: usize)
        => conv_gather_i16_impl
    where []
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn conv_gather_impl<A, W>(
    acc: &mut [A],
    k: &[W],
    g: &Geom,
    inp: Active<'_, A>,
    bias: Option<&[A]>,
    first: usize,
) where
    A: Mac<W>,
    W: Weight,
{
    let mut taps = [(0u32, 0u32); 64];
    let mut big = Vec::new();
    let taps: &mut [(u32, u32)] = if g.kh * g.kw <= taps.len() {
        &mut taps
    } else {
        big.resize(g.kh * g.kw, (0u32, 0u32));
        &mut big
    };
    for (n, out) in acc.chunks_exact_mut(g.co).enumerate() {
        let o = first + n;
        let nt = window_taps(g, o / g.wo, o % g.wo, taps);
        gather_position(out, k, g, &taps[..nt], inp, bias);
    }
}

dispatch! {
    /// Output-stationary conv: writes to `acc` (the outputs of positions `first..`,
    /// channels-last, `co` values each) the bias (`co` values, or 0) plus every active input of
    /// each position's window times its kernel row.
    pub fn conv_gather[A, W](acc: &mut [A], k: &[W], g: &Geom, inp: Active<'_, A>, bias: Option<&[A]>, first: usize)
        => conv_gather_impl
    where [A: Mac<W>, W: Weight]
}

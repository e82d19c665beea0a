//! Linear scatter: the weight rows of the active inputs added into a block of output columns
//! kept in registers, with a 16-bit-lane variant for int8 weights and spikes.

use super::simd::dispatch;
use crate::numeric::{Mac, Weight};

/// Output columns kept in registers by the blocked linear kernel.
const BLK: usize = 32;

/// `acc[c] += x * w[r*stride + c]` (or `+= w` for a unit input) for every column `c` of `acc`,
/// one row `r` at a time, in the order of `rows`. Blocks of `B` columns are kept in registers
/// while all rows stream through them.
#[inline(always)]
fn rows_blocked<const B: usize, A, W>(
    acc: &mut [A],
    w: &[W],
    stride: usize,
    rows: &[u32],
    xs: Option<&[A]>,
) -> usize
where
    A: Mac<W>,
    W: Weight,
{
    let nb = acc.len() / B;
    for b in 0..nb {
        let off = b * B;
        let Some(dst) = acc[off..].first_chunk_mut::<B>() else {
            break;
        };
        let mut t: [A; B] = *dst;
        match xs {
            None => {
                for &r in rows {
                    let base = r as usize * stride + off;
                    if let Some(wr) = w.get(base..).and_then(|s| s.first_chunk::<B>()) {
                        for (a, &wv) in t.iter_mut().zip(wr) {
                            *a = a.add_w(wv);
                        }
                    }
                }
            }
            Some(xs) => {
                for (&r, &x) in rows.iter().zip(xs) {
                    let base = r as usize * stride + off;
                    if let Some(wr) = w.get(base..).and_then(|s| s.first_chunk::<B>()) {
                        for (a, &wv) in t.iter_mut().zip(wr) {
                            *a = a.add_xw(x, wv);
                        }
                    }
                }
            }
        }
        *dst = t;
    }
    nb * B
}

/// The few columns left over by the blocked loops (fewer than 8), one column at a time: each
/// column's sum stays in a register (a row-by-row update of a short slice would go through
/// memory with masked stores, which do not forward to the next row's loads).
#[inline(always)]
fn rows_tail<A, W>(
    acc: &mut [A],
    w: &[W],
    stride: usize,
    rows: &[u32],
    xs: Option<&[A]>,
    off: usize,
) where
    A: Mac<W>,
    W: Weight,
{
    for (c, a) in acc.iter_mut().enumerate().skip(off) {
        let mut s = *a;
        match xs {
            None => {
                for &r in rows {
                    if let Some(&wv) = w.get(r as usize * stride + c) {
                        s = s.add_w(wv);
                    }
                }
            }
            Some(xs) => {
                for (&r, &x) in rows.iter().zip(xs) {
                    if let Some(&wv) = w.get(r as usize * stride + c) {
                        s = s.add_xw(x, wv);
                    }
                }
            }
        }
        *a = s;
    }
}

#[inline(always)]
pub(crate) fn linear_rows_impl<A, W>(
    acc: &mut [A],
    w: &[W],
    stride: usize,
    rows: &[u32],
    xs: Option<&[A]>,
) where
    A: Mac<W>,
    W: Weight,
{
    let done = rows_blocked::<BLK, A, W>(acc, w, stride, rows, xs);
    let done = done
        + rows_blocked::<8, A, W>(
            &mut acc[done..],
            w.get(done..).unwrap_or(&[]),
            stride,
            rows,
            xs,
        );
    rows_tail(acc, w, stride, rows, xs, done);
}

dispatch! {
    /// `acc[o] += sum over k of x_k * w[rows[k]][o]` for a weight matrix stored input-major
    /// (`w[i*stride + o]`, `o < acc.len() <= stride`); `xs = None` means every `x_k` is 1
    /// (spikes: adds only). Each output element receives its terms in the order of `rows`.
    pub fn linear_rows[A, W](acc: &mut [A], w: &[W], stride: usize, rows: &[u32], xs: Option<&[A]>)
        => linear_rows_impl
    where [A: Mac<W>, W: Weight]
}

/// Columns per block of the narrow (i16) kernel: 8 AVX2 registers.
const NBLK: usize = 128;

#[inline(always)]
fn linear_rows_i16_impl(acc: &mut [i32], w: &[i8], stride: usize, rows: &[u32]) {
    let nb = acc.len() / NBLK;
    for b in 0..nb {
        let off = b * NBLK;
        let mut t = [0i16; NBLK];
        for &r in rows {
            let base = r as usize * stride + off;
            if let Some(wr) = w.get(base..).and_then(|s| s.first_chunk::<NBLK>()) {
                for (a, &wv) in t.iter_mut().zip(wr) {
                    *a = a.wrapping_add(wv as i16);
                }
            }
        }
        if let Some(dst) = acc[off..].first_chunk_mut::<NBLK>() {
            for (d, &s) in dst.iter_mut().zip(&t) {
                *d = d.wrapping_add(s as i32);
            }
        }
    }
    let done = nb * NBLK;
    let done = done
        + rows_blocked::<BLK, i32, i8>(
            &mut acc[done..],
            w.get(done..).unwrap_or(&[]),
            stride,
            rows,
            None,
        );
    let done = done
        + rows_blocked::<8, i32, i8>(
            &mut acc[done..],
            w.get(done..).unwrap_or(&[]),
            stride,
            rows,
            None,
        );
    rows_tail(acc, w, stride, rows, None, done);
}

dispatch! {
    /// [`linear_rows`] for int8 weights and unit inputs, summing each block of columns in
    /// 16-bit lanes (twice the lanes per instruction) before adding it to the int32
    /// accumulator. Exact only when `rows.len() * max|w| <= i16::MAX`: the caller checks.
    pub fn linear_rows_i16[](acc: &mut [i32], w: &[i8], stride: usize, rows: &[u32])
        => linear_rows_i16_impl
    where []
}

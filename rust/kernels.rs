//! Inner loops of the engine: scatter of weight rows / kernel patches for the active inputs of
//! a linear / conv node, pooling, and the per-element ops. Written over contiguous slices of
//! output channels so that they auto-vectorise; on x86_64 the hot ones are also compiled for
//! AVX2 and picked at run time (the results are bit-identical: every output element sees the
//! same operations in the same order, only the lanes differ).

use crate::numeric::{Mac, Value, Weight};

/// Output columns kept in registers by the blocked linear kernel.
const BLK: usize = 32;

#[cfg(target_arch = "x86_64")]
#[inline]
pub(crate) fn has_avx2() -> bool {
    std::is_x86_feature_detected!("avx2")
}

/// Generates `pub fn $name` that runs `$imp` compiled for AVX2 when the CPU has it.
macro_rules! dispatch {
    (
        $(#[$doc:meta])*
        pub fn $name:ident [$($gen:tt)*] ($($arg:ident : $ty:ty),* $(,)?) $(-> $ret:ty)? => $imp:ident, $avx:ident
        where [$($bounds:tt)*]
    ) => {
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2")]
        unsafe fn $avx<$($gen)*>($($arg: $ty),*) $(-> $ret)? where $($bounds)* {
            $imp($($arg),*)
        }

        $(#[$doc])*
        #[inline]
        pub fn $name<$($gen)*>($($arg: $ty),*) $(-> $ret)? where $($bounds)* {
            #[cfg(target_arch = "x86_64")]
            {
                if $crate::kernels::has_avx2() {
                    // SAFETY: the CPU supports AVX2 (checked at run time).
                    return unsafe { $avx($($arg),*) };
                }
            }
            $imp($($arg),*)
        }
    };
}

pub(crate) use dispatch;

// ---------------------------------------------------------------------------------------------
// linear

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
fn linear_rows_impl<A, W>(acc: &mut [A], w: &[W], stride: usize, rows: &[u32], xs: Option<&[A]>)
where
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
        => linear_rows_impl, linear_rows_avx2
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
        => linear_rows_i16_impl, linear_rows_i16_avx2
    where []
}

/// Reference: the same product computed naively (tests).
pub fn linear_rows_naive<A: Mac<W>, W: Weight>(
    acc: &mut [A],
    w: &[W],
    stride: usize,
    rows: &[u32],
    xs: Option<&[A]>,
) {
    for (k, &r) in rows.iter().enumerate() {
        for o in 0..acc.len() {
            let wv = w[r as usize * stride + o];
            acc[o] = match xs {
                None => acc[o].add_w(wv),
                Some(xs) => acc[o].add_xw(xs[k], wv),
            };
        }
    }
}

// ---------------------------------------------------------------------------------------------
// conv2d

/// Geometry of a conv2d or pool node (input `[h, w, c]` channels-last, output `[ho, wo, co]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geom {
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
    fn out_range(i: usize, k: usize, s: usize, p: usize, n_out: usize) -> (usize, usize) {
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
    pub fn fanout(&self, y: usize, x: usize) -> usize {
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
        => conv_scatter_impl, conv_scatter_avx2
    where [A: Mac<W>, W: Weight]
}

// ---------------------------------------------------------------------------------------------
// pooling

/// Window sums of a channels-last input, every output: `out_wide[(oy*wo+ox)*c + ch]`.
pub fn pool_dense_sums<V: Value>(x: &[V], g: &Geom, out_wide: &mut [V::Wide]) {
    let c = g.c;
    for oy in 0..g.ho {
        for ox in 0..g.wo {
            let o = (oy * g.wo + ox) * c;
            let Some(dst) = out_wide.get_mut(o..o + c) else {
                return;
            };
            dst.fill(V::Wide::default());
            for ky in 0..g.kh {
                let iy = oy * g.sh + ky;
                for kx in 0..g.kw {
                    let ix = ox * g.sw + kx;
                    let i = (iy * g.w + ix) * c;
                    if let Some(src) = x.get(i..i + c) {
                        for (d, &s) in dst.iter_mut().zip(src) {
                            *d = V::wide_add(*d, s.wide());
                        }
                    }
                }
            }
        }
    }
}

/// Adds each nonzero input element `x[i]`, `i` in `nz`, to every pool window containing it.
/// Output elements touched for the first time are marked in `mark` and listed in `touched`.
pub fn pool_scatter_sums<V: Value>(
    x: &[V],
    nz: &[u32],
    g: &Geom,
    wide: &mut [V::Wide],
    mark: &mut [bool],
    touched: &mut Vec<u32>,
) {
    let c = g.c;
    for &idx in nz {
        let idx = idx as usize;
        let ch = idx % c;
        let pos = idx / c;
        let (iy, ix) = (pos / g.w, pos % g.w);
        let (oy0, oy1) = Geom::out_range(iy, g.kh, g.sh, 0, g.ho);
        let (ox0, ox1) = Geom::out_range(ix, g.kw, g.sw, 0, g.wo);
        let v = x[idx].wide();
        for oy in oy0..oy1 {
            for ox in ox0..ox1 {
                let o = (oy * g.wo + ox) * c + ch;
                if !mark[o] {
                    mark[o] = true;
                    touched.push(o as u32);
                }
                wide[o] = V::wide_add(wide[o], v);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// helpers

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::Rng;

    #[test]
    fn linear_scatter_matches_naive_float_and_int() {
        let mut rng = Rng::new(1);
        for &(n_in, n_out) in &[
            (7usize, 5usize),
            (40, 64),
            (33, 100),
            (10, 31),
            (5, 129),
            (60, 300),
            (200, 128),
        ] {
            let wf: Vec<f32> = (0..n_in * n_out).map(|_| rng.uniform() - 0.5).collect();
            let wi: Vec<i8> = (0..n_in * n_out)
                .map(|_| rng.int(-128, 127) as i8)
                .collect();
            let rows: Vec<u32> = (0..n_in as u32).filter(|_| rng.next() % 3 == 0).collect();
            let xs_f: Vec<f32> = rows.iter().map(|_| rng.uniform() * 4.0).collect();
            let xs_i: Vec<i32> = rows.iter().map(|_| rng.int(-128, 127) as i32).collect();
            let bias: Vec<f32> = (0..n_out).map(|_| rng.uniform()).collect();
            for xs in [None, Some(xs_f.as_slice())] {
                let mut a = bias.clone();
                let mut b = bias.clone();
                let mut c = bias.clone();
                linear_rows(&mut a, &wf, n_out, &rows, xs);
                linear_rows_impl(&mut c, &wf, n_out, &rows, xs);
                linear_rows_naive(&mut b, &wf, n_out, &rows, xs);
                // same order of operations per element: bit-identical
                assert_eq!(a, b);
                assert_eq!(c, b);
            }
            for xs in [None, Some(xs_i.as_slice())] {
                let mut a = vec![3i32; n_out];
                let mut b = vec![3i32; n_out];
                linear_rows(&mut a, &wi, n_out, &rows, xs);
                linear_rows_naive(&mut b, &wi, n_out, &rows, xs);
                assert_eq!(a, b);
                if xs.is_none() {
                    let mut d = vec![3i32; n_out];
                    linear_rows_i16(&mut d, &wi, n_out, &rows);
                    assert_eq!(d, b);
                }
                // against i64
                let mut c = vec![3i64; n_out];
                let xs64: Option<Vec<i64>> = xs.map(|v| v.iter().map(|&x| x as i64).collect());
                linear_rows(&mut c, &wi, n_out, &rows, xs64.as_deref());
                assert!(a.iter().zip(&c).all(|(&p, &q)| p as i64 == q));
            }
        }
    }

    /// Naive direct convolution in torch layout (CHW input, [co][c][kh][kw] weights).
    fn conv_naive(x: &[f32], wt: &[f32], g: &Geom) -> Vec<f32> {
        let mut out = vec![0.0f32; g.co * g.ho * g.wo];
        for oc in 0..g.co {
            for oy in 0..g.ho {
                for ox in 0..g.wo {
                    let mut s = 0.0f64;
                    for c in 0..g.c {
                        for ky in 0..g.kh {
                            for kx in 0..g.kw {
                                let iy = (oy * g.sh + ky) as isize - g.ph as isize;
                                let ix = (ox * g.sw + kx) as isize - g.pw as isize;
                                if iy < 0 || ix < 0 || iy >= g.h as isize || ix >= g.w as isize {
                                    continue;
                                }
                                s += x[(c * g.h + iy as usize) * g.w + ix as usize] as f64
                                    * wt[((oc * g.c + c) * g.kh + ky) * g.kw + kx] as f64;
                            }
                        }
                    }
                    out[(oc * g.ho + oy) * g.wo + ox] = s as f32;
                }
            }
        }
        out
    }

    #[test]
    fn conv_scatter_matches_naive_with_borders_and_fanout() {
        let mut rng = Rng::new(7);
        let cases = [
            (
                2usize, 5usize, 6usize, 3usize, 3usize, 3usize, 1usize, 1usize, 1usize, 1usize,
            ),
            (3, 7, 5, 4, 3, 2, 2, 1, 1, 0),
            (1, 4, 4, 2, 2, 2, 2, 2, 0, 0),
            (2, 6, 6, 3, 5, 5, 1, 1, 2, 2),
            (2, 5, 5, 2, 3, 3, 3, 3, 2, 1),
        ];
        for &(c, h, w, co, kh, kw, sh, sw, ph, pw) in &cases {
            let ho = (h + 2 * ph - kh) / sh + 1;
            let wo = (w + 2 * pw - kw) / sw + 1;
            let g = Geom {
                c,
                h,
                w,
                co,
                ho,
                wo,
                kh,
                kw,
                sh,
                sw,
                ph,
                pw,
            };
            let x: Vec<f32> = (0..c * h * w)
                .map(|_| {
                    if rng.next() % 3 == 0 {
                        (rng.int(1, 4)) as f32
                    } else {
                        0.0
                    }
                })
                .collect();
            let wt: Vec<f32> = (0..co * c * kh * kw)
                .map(|_| rng.int(-3, 3) as f32)
                .collect();
            // relayout: x CHW -> HWC ; w [co][c][kh][kw] -> [c][kh][kw][co]
            let mut xh = vec![0.0f32; x.len()];
            for ch in 0..c {
                for y in 0..h {
                    for xx in 0..w {
                        xh[(y * w + xx) * c + ch] = x[(ch * h + y) * w + xx];
                    }
                }
            }
            let mut k = vec![0.0f32; wt.len()];
            for oc in 0..co {
                for ch in 0..c {
                    for ky in 0..kh {
                        for kx in 0..kw {
                            k[((ch * kh + ky) * kw + kx) * co + oc] =
                                wt[((oc * c + ch) * kh + ky) * kw + kx];
                        }
                    }
                }
            }
            let items: Vec<u32> = (0..xh.len() as u32)
                .filter(|&i| xh[i as usize] != 0.0)
                .collect();
            let xs: Vec<f32> = items.iter().map(|&i| xh[i as usize]).collect();
            let mut acc = vec![0.0f32; ho * wo * co];
            conv_scatter(&mut acc, &k, &g, &items, Some(&xs));
            let want = conv_naive(&x, &wt, &g);
            for oc in 0..co {
                for oy in 0..ho {
                    for ox in 0..wo {
                        assert_eq!(
                            acc[(oy * wo + ox) * co + oc],
                            want[(oc * ho + oy) * wo + ox],
                            "case {:?}",
                            (c, h, w, co, kh, kw, sh, sw, ph, pw)
                        );
                    }
                }
            }
            // fan-out: a unit input at (y, x) reaches exactly `fanout` output positions
            for y in 0..h {
                for xx in 0..w {
                    let mut cnt = 0;
                    for oy in 0..ho {
                        for ox in 0..wo {
                            let iy = (oy * sh) as isize - ph as isize;
                            let ix = (ox * sw) as isize - pw as isize;
                            let (yy, xx2) = (y as isize, xx as isize);
                            if yy >= iy
                                && yy < iy + kh as isize
                                && xx2 >= ix
                                && xx2 < ix + kw as isize
                            {
                                cnt += 1;
                            }
                        }
                    }
                    assert_eq!(g.fanout(y, xx), cnt);
                }
            }
        }
    }

    #[test]
    fn pooling_dense_and_scatter_agree() {
        let mut rng = Rng::new(3);
        for &(c, h, w, k, s) in &[
            (2usize, 6usize, 6usize, 2usize, 2usize),
            (3, 7, 5, 3, 2),
            (1, 5, 5, 2, 3),
        ] {
            let ho = (h - k) / s + 1;
            let wo = (w - k) / s + 1;
            let g = Geom {
                c,
                h,
                w,
                co: c,
                ho,
                wo,
                kh: k,
                kw: k,
                sh: s,
                sw: s,
                ph: 0,
                pw: 0,
            };
            let x: Vec<i32> = (0..c * h * w)
                .map(|_| {
                    if rng.next() % 2 == 0 {
                        rng.int(-5, 5) as i32
                    } else {
                        0
                    }
                })
                .collect();
            let mut dense = vec![0i64; ho * wo * c];
            pool_dense_sums::<i32>(&x, &g, &mut dense);
            let mut nz = Vec::new();
            collect_nonzero(&x, &mut nz);
            let mut wide = vec![0i64; ho * wo * c];
            let mut mark = vec![false; ho * wo * c];
            let mut touched = Vec::new();
            pool_scatter_sums::<i32>(&x, &nz, &g, &mut wide, &mut mark, &mut touched);
            assert_eq!(dense, wide);
            // naive window sums
            for ch in 0..c {
                for oy in 0..ho {
                    for ox in 0..wo {
                        let mut sum = 0i64;
                        for ky in 0..k {
                            for kx in 0..k {
                                sum += x[((oy * s + ky) * w + ox * s + kx) * c + ch] as i64;
                            }
                        }
                        assert_eq!(dense[(oy * wo + ox) * c + ch], sum);
                    }
                }
            }
            // each touched element is marked once
            let mut t = touched.clone();
            t.sort();
            t.dedup();
            assert_eq!(t.len(), touched.len());
        }
    }

    #[test]
    fn nonzero_collection() {
        let mut x = vec![0.0f32; 37];
        x[0] = 1.0;
        x[15] = -2.0;
        x[16] = 1.0;
        x[36] = 3.0;
        x[20] = -0.0;
        let mut nz = vec![99];
        collect_nonzero(&x, &mut nz);
        assert_eq!(nz, vec![0, 15, 16, 36]);
    }
}

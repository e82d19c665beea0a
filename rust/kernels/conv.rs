//! Conv2d scatter: the kernel patch of each active input added into the channels-last outputs
//! it reaches.

use super::simd::dispatch;
use crate::numeric::{Mac, Weight};

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

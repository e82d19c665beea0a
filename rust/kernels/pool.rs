//! Pool window sums, dense or scattered from the nonzero inputs.

use super::conv::Geom;
use super::simd::dispatch;
use crate::numeric::Value;

#[inline(always)]
fn pool_dense_exact_impl<V: Value>(x: &[V], g: &Geom, out: &mut [V]) {
    let c = g.c;
    for (o, dst) in out.chunks_exact_mut(c).enumerate().take(g.ho * g.wo) {
        let (oy, ox) = (o / g.wo, o % g.wo);
        dst.fill(V::ZERO);
        for ky in 0..g.kh {
            let iy = oy * g.sh + ky;
            for kx in 0..g.kw {
                let i = (iy * g.w + ox * g.sw + kx) * c;
                if let Some(src) = x.get(i..i + c) {
                    for (d, &s) in dst.iter_mut().zip(src) {
                        *d = d.add_exact(s);
                    }
                }
            }
        }
    }
}

dispatch! {
    /// Window sums of a channels-last input in the value type itself, every output:
    /// `out[(oy*wo+ox)*c + ch]`, terms in (ky, kx) order. Exact only when no window sum can
    /// leave the value range (the caller knows, e.g. 0/1 spikes in windows of < 2^31).
    pub fn pool_dense_exact[V](x: &[V], g: &Geom, out: &mut [V]) => pool_dense_exact_impl
    where [V: Value]
}

/// Window sums of a channels-last input, every output: `out_wide[(oy*wo+ox)*c + ch]`.
pub(crate) fn pool_dense_sums<V: Value>(x: &[V], g: &Geom, out_wide: &mut [V::Wide]) {
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
pub(crate) fn pool_scatter_sums<V: Value>(
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

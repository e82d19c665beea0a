//! Add nodes (residual connections): the sum of several values of one shape.
//!
//! Int sums run in int32 with an overflow flag, one vectorised pass per input; only when a
//! partial sum leaves int32 is the sum redone in the wide type, which decides exactly whether
//! the result fits (a sum of three or more may leave int32 on the way and come back).

use super::{narrow_into, split_values, PAR_MIN_VALUES};
use crate::engine::network::{Kind, Node};
use crate::engine::state::{Buf, SampleOut, Scratch};
use crate::engine::step::StepCtx;
use crate::engine::value::EngineValue;
use crate::error::Result;
use crate::kernels::simd::dispatch;

/// One input of an add: its kind, its map into the output layout (if it differs) and its value.
type Term<'b, V> = (Kind, Option<&'b [u32]>, &'b Buf<V>);

#[allow(clippy::too_many_arguments)]
pub(crate) fn run_add<'b, V: EngineValue>(
    cx: &StepCtx<'_, V>,
    node: &Node<V>,
    maps: &[Option<Vec<u32>>],
    ins: impl Iterator<Item = &'b Buf<V>>,
    outb: &mut Buf<V>,
    sc: &mut Scratch<V>,
    so: &mut SampleOut<'_>,
    li: usize,
) -> Result<()> {
    let n = node.len;
    let ins: Vec<Term<'_, V>> = node
        .inputs
        .iter()
        .zip(ins)
        .enumerate()
        .map(|(k, (&slot, inb))| {
            let map = maps.get(k).and_then(|m| m.as_deref());
            (cx.plan.slot_kind[slot], map, inb)
        })
        .collect();
    for &(kind, _, inb) in &ins {
        so.aux[li] += match kind {
            Kind::Sparse => inb.nz.len() as u64,
            Kind::Dense => n as u64,
            Kind::Static if cx.g == 0 => n as u64,
            Kind::Static => 0,
        };
    }
    if let Some(out) = V::as_i32_mut(&mut outb.d[..n]) {
        // Dense terms without maps split across the team by ranges; otherwise one piece.
        let ranged = ins.iter().all(|t| t.0 != Kind::Sparse && t.1.is_none());
        let ok = if ranged {
            split_values(
                cx.team,
                out,
                1,
                PAR_MIN_VALUES,
                &|o: &mut [i32], first: usize| sum_i32(o, &ins, first),
            )
        } else {
            Some(sum_i32(out, &ins, 0))
        };
        if ok == Some(true) {
            outb.finish(cx.plan.slot_kind[node.slot]);
            return Ok(());
        }
    }
    let acc = &mut sc.acc_w[..n];
    acc.fill(V::Wide::default());
    for &(kind, map, inb) in &ins {
        match (kind, map) {
            (Kind::Sparse, _) => {
                for &i in &inb.nz {
                    let o = map.map_or(i as usize, |m| m[i as usize] as usize);
                    acc[o] = V::wide_add(acc[o], inb.d[i as usize].wide());
                }
            }
            (_, None) => {
                for (a, &v) in acc.iter_mut().zip(&inb.d) {
                    *a = V::wide_add(*a, v.wide());
                }
            }
            (_, Some(m)) => {
                for (i, &v) in inb.d.iter().enumerate() {
                    let o = m[i] as usize;
                    acc[o] = V::wide_add(acc[o], v.wide());
                }
            }
        }
    }
    narrow_into(node, cx.g, acc, &mut outb.d)?;
    outb.finish(cx.plan.slot_kind[node.slot]);
    Ok(())
}

/// Writes the sum of `ins` (int32 values) at `first..first + out.len()` to `out` in int32
/// (sparse or mapped terms: `first` must be 0 and `out` whole); `false` (and `out`
/// unspecified) when a partial sum overflowed or an input is not int32.
fn sum_i32<V: EngineValue>(out: &mut [i32], ins: &[Term<'_, V>], first: usize) -> bool {
    let (mut ok, n) = (true, out.len());
    for (k, &(kind, map, inb)) in ins.iter().enumerate() {
        let Some(x) = V::as_i32(&inb.d) else {
            return false;
        };
        let Some(x) = x.get(first..) else {
            return false;
        };
        match (kind, map) {
            (Kind::Sparse, _) | (_, Some(_)) => {
                if k == 0 {
                    out.fill(0);
                }
                let at = |i: usize| map.map_or(i, |m| m[i] as usize);
                let mut put = |i: usize| {
                    let o = &mut out[at(i)];
                    let (s, over) = o.overflowing_add(x[i]);
                    *o = s;
                    ok &= !over;
                };
                if kind == Kind::Sparse {
                    inb.nz.iter().for_each(|&i| put(i as usize));
                } else {
                    (0..x.len().min(n)).for_each(put);
                }
            }
            (_, None) if k == 0 => out.copy_from_slice(&x[..n]),
            (_, None) => ok &= add_flagged(out, x),
        }
    }
    ok
}

/// `out += x` elementwise with wrapping int32 sums; `false` if any sum overflowed.
#[inline(always)]
fn add_flagged_impl(out: &mut [i32], x: &[i32]) -> bool {
    let mut sign = 0i32;
    for (o, &v) in out.iter_mut().zip(x) {
        let s = o.wrapping_add(v);
        // overflow iff both terms have the sign the sum lacks
        sign |= (*o ^ s) & (v ^ s);
        *o = s;
    }
    sign >= 0
}

dispatch! {
    /// [`add_flagged_impl`] at the chosen SIMD level.
    pub fn add_flagged[](out: &mut [i32], x: &[i32]) -> bool => add_flagged_impl
    where []
}

#[cfg(test)]
mod tests {
    use super::add_flagged;

    #[test]
    fn flagged_add_finds_every_overflow_and_only_those() {
        let cases = [
            (i32::MAX, 1, false),
            (i32::MIN, -1, false),
            (i32::MAX, -1, true),
            (i32::MIN, i32::MAX, true),
            (i32::MAX - 5, 5, true),
            (i32::MIN + 5, -6, false),
            (-3, 7, true),
        ];
        for (a, b, fits) in cases {
            // the case alone and in a long vector (the vectorised loop and its tail)
            for len in [1usize, 37] {
                let mut out = vec![1i32; len];
                let mut x = vec![2i32; len];
                out[len / 2] = a;
                x[len / 2] = b;
                assert_eq!(add_flagged(&mut out, &x), fits, "{a} + {b}");
                assert_eq!(out[len / 2], a.wrapping_add(b));
            }
        }
    }
}

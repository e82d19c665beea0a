//! Scale nodes: a per-channel fixed-point (int) or float rescale.

use super::{overflow, split_values, PAR_MIN_VALUES};
use crate::engine::network::{Kind, Node, ScaleOp};
use crate::engine::state::{Buf, SampleOut};
use crate::engine::step::StepCtx;
use crate::engine::value::EngineValue;
use crate::error::{Result, SnnError};
use crate::kernels::simd::dispatch;
use crate::numeric::Value;

#[allow(clippy::too_many_arguments)]
pub(crate) fn run_scale<V: EngineValue>(
    cx: &StepCtx<'_, V>,
    node: &Node<V>,
    op: &ScaleOp<V>,
    inb: &Buf<V>,
    in_kind: Kind,
    outb: &mut Buf<V>,
    so: &mut SampleOut<'_>,
    li: usize,
) -> Result<()> {
    let out_kind = cx.plan.slot_kind[node.slot];
    let p = op.period;
    let err = |k: usize| {
        overflow(
            node,
            cx.g,
            format!("output element {k} does not fit in int32"),
        )
    };
    if out_kind == Kind::Sparse {
        so.aux[li] += inb.nz.len() as u64;
        outb.clear_sparse();
        for &i in &inb.nz {
            let i = i as usize;
            let c = i % p;
            let v = V::scale_elem(inb.d[i], op.mul[c], op.shift[c], op.f).ok_or_else(|| err(i))?;
            outb.d[i] = v;
            if v.is_nonzero() {
                outb.nz.push(i as u32);
            }
        }
    } else {
        so.aux[li] += match in_kind {
            Kind::Sparse => inb.nz.len() as u64,
            _ => node.len as u64,
        };
        outb.dirty = true;
        let x = &inb.d;
        let ok = split_values(
            cx.team,
            &mut outb.d,
            p,
            PAR_MIN_VALUES,
            &|o: &mut [V], first: usize| {
                scale_dense(o, &x[first..first + o.len()], p, &op.mul, &op.shift, op.f)
            },
        )
        .ok_or_else(|| SnnError::Internal(format!("a thread of node '{}' failed", node.name)))?;
        if !ok {
            let k = (0..node.len)
                .find(|&i| V::scale_elem(inb.d[i], op.mul[i % p], op.shift[i % p], op.f).is_none())
                .unwrap_or(0);
            return Err(err(k));
        }
    }
    Ok(())
}

/// `out = scale(x)` elementwise, the parameters cycling with period `p` (the channels of a
/// channels-last value); `false` if any result left the value range (int).
#[inline(always)]
fn scale_dense_impl<V: Value>(
    out: &mut [V],
    x: &[V],
    p: usize,
    mul: &[V],
    shift: &[V],
    f: u32,
) -> bool {
    let mut ok = true;
    for (oc, ic) in out.chunks_exact_mut(p).zip(x.chunks_exact(p)) {
        for (((o, &x), &m), &s) in oc.iter_mut().zip(ic).zip(mul).zip(shift) {
            let v = V::scale_elem(x, m, s, f);
            ok &= v.is_some();
            *o = v.unwrap_or(V::ZERO);
        }
    }
    ok
}

dispatch! {
    /// The dense scale loop, at the chosen SIMD level (int: 64-bit products).
    pub fn scale_dense[V: Value](out: &mut [V], x: &[V], p: usize, mul: &[V], shift: &[V], f: u32) -> bool
        => scale_dense_impl
    where []
}

//! Average and sum pools: window sums scattered from the nonzero inputs or computed densely.

use super::overflow;
use crate::engine::network::{Kind, Node, PoolOp};
use crate::engine::state::{Buf, SampleOut, Scratch};
use crate::engine::step::StepCtx;
use crate::engine::value::EngineValue;
use crate::error::Result;
use crate::kernels::{self};
use crate::numeric::Value;

pub(crate) fn pool_value<V: Value>(op: &PoolOp, w: V::Wide) -> Option<V> {
    if op.avg {
        V::avg_elem(w, (op.g.kh * op.g.kw) as u32, op.m, op.f)
    } else {
        V::narrow(w)
    }
}

/// A pool of binary spikes sums its windows densely once the spikes number at least
/// 1/`POOL_DENSE_MIN_FRACTION` of its outputs: the dense pass streams the whole input once,
/// vectorised, while the scatter marks, sorts and clears every touched window. Measured on the
/// event-camera network B (firing sweep, int8, batch 1): with the former bound (1/4) hidden
/// firing of 2.5-5 % took 0.93-1.1 ms per sample, more than at 10 %; with 1/64, 0.63-0.66 ms.
const POOL_DENSE_MIN_FRACTION: usize = 64;

#[allow(clippy::too_many_arguments)]
pub(crate) fn run_pool<V: EngineValue>(
    cx: &StepCtx<'_, V>,
    node: &Node<V>,
    op: &PoolOp,
    inb: &Buf<V>,
    in_kind: Kind,
    outb: &mut Buf<V>,
    sc: &mut Scratch<V>,
    so: &mut SampleOut<'_>,
    li: usize,
) -> Result<()> {
    let n = node.len;
    if in_kind == Kind::Sparse {
        so.aux[li] += match op.uniform_fanout {
            Some(f) => inb.nz.len() as u64 * f as u64,
            None => kernels::fanout_sum(&inb.nz, op.g.c, &op.fanout),
        };
        // Spikes in windows of fewer than 2^31 elements: the sums stay in the value type, so a
        // dense pass over all windows (vectorised over channels) runs unless the spikes are
        // very few (see `POOL_DENSE_MIN_FRACTION`).
        let binary = cx.net.slot_binary[node.inputs[0]];
        if binary && inb.nz.len() * POOL_DENSE_MIN_FRACTION >= n && op.g.kh * op.g.kw < (1 << 31) {
            kernels::pool_dense_exact(&inb.d, &op.g, &mut outb.d);
            if op.avg {
                let k = (op.g.kh * op.g.kw) as u32;
                for (o, v) in outb.d.iter_mut().enumerate() {
                    *v = V::avg_elem(v.wide(), k, op.m, op.f).ok_or_else(|| {
                        overflow(
                            node,
                            cx.g,
                            format!(
                                "output element {o}: window sum {v:?} gives a value outside int32"
                            ),
                        )
                    })?;
                }
            }
            outb.finish(cx.plan.slot_kind[node.slot]);
            return Ok(());
        }
        outb.clear_sparse();
        sc.touched.clear();
        kernels::pool_scatter_sums::<V>(
            &inb.d,
            &inb.nz,
            &op.g,
            &mut sc.acc_w,
            &mut sc.mark,
            &mut sc.touched,
        );
        sc.touched.sort_unstable();
        let mut bad = None;
        for &o in &sc.touched {
            let o = o as usize;
            let w = sc.acc_w[o];
            sc.acc_w[o] = V::Wide::default();
            sc.mark[o] = false;
            match pool_value::<V>(op, w) {
                Some(v) => {
                    outb.d[o] = v;
                    if v.is_nonzero() {
                        outb.nz.push(o as u32);
                    }
                }
                None => {
                    bad.get_or_insert((o, w));
                }
            }
        }
        if let Some((o, w)) = bad {
            return Err(overflow(
                node,
                cx.g,
                format!("output element {o}: window sum {w:?} gives a value outside int32"),
            ));
        }
    } else {
        so.aux[li] += node.fanout_total;
        kernels::pool_dense_sums::<V>(&inb.d, &op.g, &mut sc.acc_w[..n]);
        for (k, (o, w)) in outb.d.iter_mut().zip(sc.acc_w[..n].iter_mut()).enumerate() {
            *o = pool_value::<V>(op, *w).ok_or_else(|| {
                overflow(
                    node,
                    cx.g,
                    format!("output element {k}: window sum {w:?} gives a value outside int32"),
                )
            })?;
            *w = V::Wide::default();
        }
        outb.finish(cx.plan.slot_kind[node.slot]);
    }
    Ok(())
}

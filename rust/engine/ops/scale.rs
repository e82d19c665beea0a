//! Scale nodes: a per-channel fixed-point (int) or float rescale.

use super::overflow;
use crate::engine::network::{Kind, Node, ScaleOp};
use crate::engine::state::{Buf, SampleOut};
use crate::engine::step::StepCtx;
use crate::engine::value::EngineValue;
use crate::error::Result;

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
        let mut bad = false;
        for (oc, ic) in outb.d.chunks_exact_mut(p).zip(inb.d.chunks_exact(p)) {
            for (((o, &x), &m), &s) in oc.iter_mut().zip(ic).zip(&op.mul).zip(&op.shift) {
                match V::scale_elem(x, m, s, op.f) {
                    Some(v) => *o = v,
                    None => bad = true,
                }
            }
        }
        if bad {
            let k = (0..node.len)
                .find(|&i| V::scale_elem(inb.d[i], op.mul[i % p], op.shift[i % p], op.f).is_none())
                .unwrap_or(0);
            return Err(err(k));
        }
    }
    Ok(())
}

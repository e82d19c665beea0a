//! Conv2d nodes: the kernel patch of each active input scattered into the outputs it reaches.

use super::{gather_active, narrow_into, needs_wide, wide_bias};
use crate::engine::network::{ConvOp, Kind, Node};
use crate::engine::state::{Buf, SampleOut, Scratch};
use crate::engine::step::StepCtx;
use crate::engine::value::EngineValue;
use crate::error::{Result, SnnError};
use crate::kernels::{self, fill_bias};
use crate::numeric::{Mac, Value, Weight, WeightVisitor};

pub(crate) struct ConvVisit<'a, V: Value> {
    fast: bool,
    acc: &'a mut [V],
    acc_w: &'a mut [V::Wide],
    g: &'a kernels::Geom,
    items: &'a [u32],
    xs: Option<&'a [V]>,
    xs_w: Option<&'a [V::Wide]>,
}

impl<V: Value> WeightVisitor<V> for ConvVisit<'_, V> {
    type Out = ();
    fn visit<W: Weight>(self, w: &[W])
    where
        V: Mac<W>,
        V::Wide: Mac<W>,
    {
        if self.fast {
            kernels::conv_scatter::<V, W>(self.acc, w, self.g, self.items, self.xs);
        } else {
            kernels::conv_scatter::<V::Wide, W>(self.acc_w, w, self.g, self.items, self.xs_w);
        }
    }
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn run_conv<V: EngineValue>(
    cx: &StepCtx<'_, V>,
    node: &Node<V>,
    op: &ConvOp<V>,
    inb: &Buf<V>,
    in_kind: Kind,
    outb: &mut Buf<V>,
    sc: &mut Scratch<V>,
    so: &mut SampleOut<'_>,
    li: usize,
) -> Result<()> {
    let binary = cx.net.slot_binary[node.inputs[0]];
    let Scratch {
        rows,
        xs,
        xs_w,
        acc_w,
        ..
    } = sc;
    let (rows_s, xs_s) = match (rows.first_mut(), xs.first_mut()) {
        (Some(r), Some(x)) => (r, x),
        _ => return Err(SnnError::Internal("scratch".into())),
    };
    let (rows, unit, max_x) = gather_active(inb, in_kind, binary, rows_s, xs_s);
    match in_kind {
        Kind::Sparse => {
            let c = op.g.c;
            let s: u64 = rows.iter().map(|&i| op.fanout[i as usize / c] as u64).sum();
            so.sops[li] += s * op.g.co as u64;
        }
        _ => so.macs[li] += node.fanout_total,
    }
    let n = node.len;
    outb.dirty = true;
    let wide = needs_wide::<V>(op.w_abs, max_x, op.bias_abs);
    if wide {
        xs_w.clear();
        xs_w.extend(xs_s.iter().map(|v| v.wide()));
        wide_bias(acc_w, op.bias.as_deref(), n);
    } else {
        fill_bias(&mut outb.d, op.bias.as_deref());
    }
    let vis = ConvVisit {
        fast: !wide,
        acc: &mut outb.d,
        acc_w: &mut acc_w[..n],
        g: &op.g,
        items: rows,
        xs: if unit { None } else { Some(xs_s.as_slice()) },
        xs_w: if unit { None } else { Some(xs_w.as_slice()) },
    };
    V::visit_weights(&op.w, vis).map_err(|e| SnnError::Internal(e.to_string()))?;
    if wide {
        narrow_into(node, cx.g, &acc_w[..n], &mut outb.d)?;
    }
    Ok(())
}

//! Add nodes (residual connections): the sum of several values of one shape.

use super::narrow_into;
use crate::engine::network::{Kind, Node};
use crate::engine::state::{Buf, SampleOut, Scratch};
use crate::engine::step::StepCtx;
use crate::engine::value::EngineValue;
use crate::error::Result;

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
    let acc = &mut sc.acc_w[..n];
    acc.fill(V::Wide::default());
    for (k, (&slot, inb)) in node.inputs.iter().zip(ins).enumerate() {
        let kind = cx.plan.slot_kind[slot];
        let map = maps.get(k).and_then(|m| m.as_deref());
        match kind {
            Kind::Sparse => {
                so.aux[li] += inb.nz.len() as u64;
                for &i in &inb.nz {
                    let o = map.map_or(i as usize, |m| m[i as usize] as usize);
                    acc[o] = V::wide_add(acc[o], inb.d[i as usize].wide());
                }
            }
            Kind::Dense | Kind::Static => {
                if kind == Kind::Dense || cx.g == 0 {
                    so.aux[li] += n as u64;
                }
                match map {
                    None => {
                        for (a, &v) in acc.iter_mut().zip(&inb.d) {
                            *a = V::wide_add(*a, v.wide());
                        }
                    }
                    Some(m) => {
                        for (i, &v) in inb.d.iter().enumerate() {
                            let o = m[i] as usize;
                            acc[o] = V::wide_add(acc[o], v.wide());
                        }
                    }
                }
            }
        }
    }
    narrow_into(node, cx.g, acc, &mut outb.d)?;
    outb.finish(cx.plan.slot_kind[node.slot]);
    Ok(())
}

//! Neuron and integrate nodes: one step of the neuron law over every element (the law itself
//! is in `crate::neurons`), the spike list, the spike counts, recordings and output counts.

use crate::engine::network::{NeuronOp, Node};
use crate::engine::state::{Buf, RecSpec, SampleOut};
use crate::engine::step::StepCtx;
use crate::engine::value::EngineValue;
use crate::error::Result;
use crate::format::OpKind;
use crate::kernels;
use crate::neurons;

use super::overflow;

/// Where the spikes of a neuron step go besides its value: recordings and the output counts.
pub(crate) struct SpikeSink<'a, 'b> {
    pub(crate) rec: &'a [RecSpec],
    pub(crate) rec_slots: &'a mut [&'b mut [u8]],
    /// The per-element spike counts of the output node (`None` for other nodes).
    pub(crate) out_count: Option<&'a mut Vec<u64>>,
    /// Step index within this call (the row of the recordings).
    pub(crate) t: usize,
}

/// One step of neuron node `ni`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn run_neuron<V: EngineValue>(
    sx: &StepCtx<'_, V>,
    ni: usize,
    node: &Node<V>,
    op: &NeuronOp<V>,
    m: &mut [V],
    inb: &Buf<V>,
    outb: &mut Buf<V>,
    so: &mut SampleOut<'_>,
    li: usize,
    sink: &mut SpikeSink<'_, '_>,
) -> Result<()> {
    so.su[li] += node.len as u64;
    let ok = if node.kind == OpKind::Integrate {
        let ok = neurons::step(&op.params, op.period, m, &inb.d, &mut []);
        outb.d.copy_from_slice(m);
        outb.dirty = true;
        ok
    } else {
        let ok = neurons::step(&op.params, op.period, m, &inb.d, &mut outb.d);
        kernels::collect_nonzero(&outb.d, &mut outb.nz);
        outb.dirty = false;
        so.spikes[li] += outb.nz.len() as u64;
        let t = sink.t;
        for (r, slot) in sink.rec.iter().zip(sink.rec_slots.iter_mut()) {
            if r.node == ni {
                let n = node.len;
                if let Some(frame) = slot.get_mut(t * n..(t + 1) * n) {
                    for &k in &outb.nz {
                        frame[r.map[k as usize] as usize] = 1;
                    }
                }
            }
        }
        if let Some(out_count) = sink.out_count.as_mut() {
            for &k in &outb.nz {
                out_count[k as usize] += 1;
            }
        }
        ok
    };
    if !ok {
        return Err(overflow(
            node,
            sx.g,
            "a membrane value left the int32 range",
        ));
    }
    Ok(())
}

//! Neuron and integrate nodes: one step of the neuron law over every element (the law itself
//! is in `crate::neurons`), the spike list, the spike counts, recordings and output counts.

use crate::engine::network::{NeuronOp, Node};
use crate::engine::state::{Buf, RecSpec, SampleOut};
use crate::engine::step::StepCtx;
use crate::engine::team::Team;
use crate::engine::value::EngineValue;
use crate::error::Result;
use crate::format::OpKind;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

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

/// Neuron layers of at least this many elements are split across the sample's team.
pub(crate) const PAR_MIN_ELEMS: usize = 1 << 12;

/// One step of a spiking neuron node: membranes `m`, input `x`, spikes into `outb` (values and
/// active list). Split by elements across the team when the layer is large; returns `false` on
/// int overflow.
fn step_spikes<V: EngineValue>(
    op: &NeuronOp<V>,
    m: &mut [V],
    x: &[V],
    outb: &mut Buf<V>,
    team: &Team,
    par_nz: &mut Vec<Vec<u32>>,
) -> bool {
    let n = m.len();
    let width = team.width();
    if width < 2 || n < PAR_MIN_ELEMS {
        outb.nz.clear();
        return step_collect(op, m, x, &mut outb.d, &mut outb.nz);
    }
    let per = n.div_ceil(width).div_ceil(op.period) * op.period;
    par_nz.resize_with(width, Vec::new);
    let parts: Vec<Mutex<Option<Part<'_, V>>>> = m
        .chunks_mut(per)
        .zip(x.chunks(per))
        .zip(outb.d.chunks_mut(per))
        .zip(par_nz.iter_mut())
        .map(|(((m, x), o), nz)| Mutex::new(Some((m, x, o, nz))))
        .collect();
    let ok = AtomicBool::new(true);
    let ran = team.split(&|k| {
        if let Some((m, x, o, nz)) = parts.get(k).and_then(|p| p.lock().ok()?.take()) {
            nz.clear();
            if !step_collect(op, m, x, o, nz) {
                ok.store(false, Ordering::Relaxed);
            }
        }
    });
    drop(parts);
    outb.nz.clear();
    for (k, nz) in par_nz.iter().enumerate().take(n.div_ceil(per)) {
        let base = (k * per) as u32;
        outb.nz.extend(nz.iter().map(|&i| i + base));
    }
    ran && ok.into_inner()
}

/// Elements per block of [`step_collect`]: membranes, inputs and spikes of a block (12 bytes
/// an element for 32-bit values) stay in the L1 cache between the law and the spike list.
const BLOCK: usize = 2048;

/// The neuron law over `m`, `x` into `o`, and the indices (ascending) of the spikes appended
/// to `nz`, block by block so that each block's spikes are listed while still
/// in cache. Returns `false` on int overflow.
fn step_collect<V: EngineValue>(
    op: &NeuronOp<V>,
    m: &mut [V],
    x: &[V],
    o: &mut [V],
    nz: &mut Vec<u32>,
) -> bool {
    // Whole periods per block, so that every block starts at the first parameter.
    let block = BLOCK.div_ceil(op.period) * op.period;
    let mut ok = true;
    let mut at = 0u32;
    for ((mb, xb), ob) in m
        .chunks_mut(block)
        .zip(x.chunks(block))
        .zip(o.chunks_mut(block))
    {
        ok &= neurons::step(&op.params, op.period, mb, xb, ob);
        kernels::append_nonzero(ob, at, nz);
        at += mb.len() as u32;
    }
    ok
}

/// One part of a neuron layer split across a team: membranes, input, spikes, active list.
type Part<'a, V> = (&'a mut [V], &'a [V], &'a mut [V], &'a mut Vec<u32>);

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
    par_nz: &mut Vec<Vec<u32>>,
) -> Result<()> {
    so.su[li] += node.len as u64;
    let ok = if node.kind == OpKind::Integrate {
        let ok = neurons::step(&op.params, op.period, m, &inb.d, &mut []);
        outb.d.copy_from_slice(m);
        outb.dirty = true;
        ok
    } else {
        let ok = step_spikes(op, m, &inb.d, outb, sx.team, par_nz);
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

//! The simulation of one sample (docs/model-format.md §3-4).
//!
//! Nodes run in topological order, each over a chunk of consecutive steps before the next node
//! (node-major): a node's value at step n depends only on its inputs at step n and its own
//! state, so this gives the same values as a step-by-step loop, while a linear layer can stream
//! every step of the chunk through one group of weight columns at a time (the group stays in
//! cache instead of the whole matrix being re-read at every step). Static values are computed
//! once, at step 0; sparse values carry the list of their nonzero elements; counts are exact.

use super::network::{Kind, Layout, Network, Op, Plan};
use super::ops::add::run_add;
use super::ops::conv::run_conv;
use super::ops::linear::run_linear;
use super::ops::neuron::{run_neuron, SpikeSink};
use super::ops::pool::run_pool;
use super::ops::scale::run_scale;
use super::state::{RecSpec, SampleInput, SampleOut, SampleState};
use super::team::Team;
use super::value::EngineValue;
use crate::error::{Result, SnnError};
use crate::format::OpKind;
use crate::kernels;
use crate::numeric::Value;

// ---------------------------------------------------------------------------------------------
// Steps

/// One step of one node.
pub(crate) struct StepCtx<'a, V: Value> {
    pub(crate) net: &'a Network<V>,
    pub(crate) plan: &'a Plan,
    /// Global step (since the start of the sample / stream).
    pub(crate) g: usize,
    /// The threads a node may split a step's work across (a team of one: serial).
    pub(crate) team: &'a Team,
}

/// A chunk of steps.
pub(crate) struct ChunkCtx<'a, V: Value> {
    pub(crate) net: &'a Network<V>,
    pub(crate) plan: &'a Plan,
    /// Global step of the chunk's first step.
    pub(crate) g0: usize,
    /// Step index (within this call) of the chunk's first step.
    pub(crate) t0: usize,
    /// Steps of this call (the T of the count arrays).
    pub(crate) tn: usize,
    /// Steps in this chunk.
    pub(crate) nj: usize,
    /// The threads a node may split a step's work across (a team of one: serial).
    pub(crate) team: &'a Team,
}

impl<V: Value> ChunkCtx<'_, V> {
    /// Buffer index of `slot` at step `j` of the chunk.
    pub(crate) fn bi(&self, slot: usize, j: usize) -> usize {
        if self.plan.slot_kind[slot] == Kind::Static {
            0
        } else {
            j
        }
    }
    pub(crate) fn step(&self, j: usize) -> StepCtx<'_, V> {
        StepCtx {
            net: self.net,
            plan: self.plan,
            g: self.g0 + j,
            team: self.team,
        }
    }
    /// Index into the `[L][T]` count arrays.
    pub(crate) fn li(&self, ni: usize, j: usize) -> usize {
        ni * self.tn + self.t0 + j
    }
}

/// Runs node `ni` over the steps of a chunk.
#[allow(clippy::too_many_arguments)]
pub(crate) fn run_node<V: EngineValue>(
    cx: &ChunkCtx<'_, V>,
    ni: usize,
    st: &mut SampleState<V>,
    so: &mut SampleOut<'_>,
    rec: &[RecSpec],
    rec_slots: &mut [&mut [u8]],
    is_output: bool,
) -> Result<()> {
    let node = &cx.net.nodes[ni];
    if matches!(node.op, Op::Flatten | Op::Delay) {
        return Ok(());
    }
    let js = if cx.plan.slot_kind[node.slot] == Kind::Static {
        if cx.g0 > 0 {
            return Ok(());
        }
        0..1
    } else {
        0..cx.nj
    };
    let SampleState {
        bufs,
        mem,
        out_count,
        sc,
        ..
    } = st;
    let mut outs = std::mem::take(&mut bufs[node.slot]);
    let in_slot = node.inputs[0];
    let in_kind = cx.plan.slot_kind[in_slot];
    let res = (|| -> Result<()> {
        if let Op::Linear(op) = &node.op {
            return run_linear(cx, ni, op, &bufs[in_slot], &mut outs, js, sc, so);
        }
        for j in js {
            let sx = cx.step(j);
            let li = cx.li(ni, j);
            let inb = &bufs[in_slot][cx.bi(in_slot, j)];
            let outb = &mut outs[j];
            match &node.op {
                Op::Linear(_) | Op::Flatten | Op::Delay => {}
                Op::Conv(op) => run_conv(&sx, node, op, inb, in_kind, outb, sc, so, li)?,
                Op::Pool(op) => run_pool(&sx, node, op, inb, in_kind, outb, sc, so, li)?,
                Op::Add(op) => {
                    let ins = node.inputs.iter().map(|&s| &bufs[s][cx.bi(s, j)]);
                    run_add(&sx, node, &op.maps, ins, outb, sc, so, li)?
                }
                Op::Scale(op) => run_scale(&sx, node, op, inb, in_kind, outb, so, li)?,
                Op::Neuron(op) => {
                    let mut sink = SpikeSink {
                        rec,
                        rec_slots: &mut *rec_slots,
                        out_count: if is_output {
                            Some(&mut *out_count)
                        } else {
                            None
                        },
                        t: cx.t0 + j,
                    };
                    run_neuron(
                        &sx,
                        ni,
                        node,
                        op,
                        &mut mem[ni],
                        inb,
                        outb,
                        so,
                        li,
                        &mut sink,
                        &mut sc.par_nz,
                    )?
                }
            }
        }
        Ok(())
    })();
    bufs[node.slot] = outs;
    res
}

/// Loads the input of global step `g` (step `t` of this call) into buffer `j` of slot 0.
pub(crate) fn load_input<V: EngineValue>(
    net: &Network<V>,
    st: &mut SampleState<V>,
    input: &SampleInput<'_, V>,
    g: usize,
    t: usize,
    j: usize,
    in_map: &[u32],
) -> Result<()> {
    let n = net.input_len;
    match input {
        SampleInput::Static(x) => {
            if g == 0 {
                let buf = &mut st.bufs[0][0];
                for (d, &m) in buf.d.iter_mut().zip(in_map) {
                    *d = x[m as usize];
                }
                buf.dirty = true;
            }
        }
        SampleInput::Frames(f) => {
            let buf = &mut st.bufs[0][j];
            let frame = f
                .get(t * n..(t + 1) * n)
                .ok_or_else(|| SnnError::Internal("frame out of range".into()))?;
            for (d, &m) in buf.d.iter_mut().zip(in_map) {
                *d = frame[m as usize];
            }
            kernels::collect_nonzero(&buf.d, &mut buf.nz);
            buf.dirty = false;
        }
        SampleInput::Events(b) => {
            let buf = &mut st.bufs[0][j];
            buf.clear_sparse();
            for &i in b.step(t) {
                let i = i as usize;
                let d = &mut buf.d[i];
                if !d.is_nonzero() {
                    buf.nz.push(i as u32);
                }
                *d = V::narrow(V::wide_add(d.wide(), V::ONE.wide())).ok_or_else(|| {
                    SnnError::events(None, format!("event count overflow at input element {i}"))
                })?;
            }
            buf.nz.sort_unstable();
        }
    }
    Ok(())
}

/// Runs `tn` steps of one sample from its current state.
#[allow(clippy::too_many_arguments)]
pub(crate) fn run_steps<V: EngineValue>(
    net: &Network<V>,
    plan: &Plan,
    st: &mut SampleState<V>,
    input: &SampleInput<'_, V>,
    tn: usize,
    so: &mut SampleOut<'_>,
    rec: &[RecSpec],
    in_map: &[u32],
    team: &Team,
) -> Result<()> {
    let chunk = net.chunk.max(1);
    let mut rec_slots: Vec<&mut [u8]> = std::mem::take(&mut so.rec);
    let res = (|| {
        let mut t0 = 0;
        while t0 < tn {
            let nj = chunk.min(tn - t0);
            let g0 = st.steps_done;
            for j in 0..nj {
                load_input(net, st, input, g0 + j, t0 + j, j, in_map)?;
            }
            let cx = ChunkCtx {
                net,
                plan,
                g0,
                t0,
                tn,
                nj,
                team,
            };
            for ni in 0..net.nodes.len() {
                run_node(&cx, ni, st, so, rec, &mut rec_slots, ni == net.output)?;
            }
            advance_delays(net, plan, st);
            st.steps_done += nj;
            t0 += nj;
        }
        Ok(())
    })();
    so.rec = rec_slots;
    res
}

/// At the end of a step (a chunk is one step when the graph has delays): every delay takes
/// its source's value of this step, which the next step reads.
pub(crate) fn advance_delays<V: Value>(net: &Network<V>, plan: &Plan, st: &mut SampleState<V>) {
    for d in &net.delays {
        let src = std::mem::take(&mut st.bufs[d.src][0]);
        let dst = &mut st.bufs[d.dst][0];
        let at = |i: usize| d.map.as_ref().map_or(i, |m| m[i] as usize);
        if plan.slot_kind[d.dst] == Kind::Sparse {
            dst.clear_sparse();
            for &i in &src.nz {
                let o = at(i as usize);
                dst.d[o] = src.d[i as usize];
                dst.nz.push(o as u32);
            }
            if d.map.is_some() {
                dst.nz.sort_unstable();
            }
        } else {
            match &d.map {
                None => dst.d.copy_from_slice(&src.d),
                Some(m) => {
                    for (i, &v) in src.d.iter().enumerate() {
                        dst.d[m[i] as usize] = v;
                    }
                }
            }
            dst.dirty = true;
        }
        st.bufs[d.src][0] = src;
    }
}

/// Writes the output sums (torch order) of the state: spike counts, or the membrane.
pub(crate) fn output_sums<V: Value>(net: &Network<V>, st: &SampleState<V>, out: &mut [f64]) {
    let node = &net.nodes[net.output];
    let layout: &Layout = &node.layout;
    if node.kind == OpKind::Integrate {
        for (k, v) in st.mem[net.output].iter().enumerate() {
            out[layout.torch_index(k)] = v.to_f64();
        }
    } else {
        for (k, &c) in st.out_count.iter().enumerate() {
            out[layout.torch_index(k)] = c as f64;
        }
    }
}

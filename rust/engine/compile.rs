//! Compilation of a validated model file into a [`Network`]: weights re-laid out for the
//! scatter kernels, per-channel parameters expanded, fan-outs and dense MAC counts, overflow
//! bounds, and the value kind of every slot per input plan.
//!
//! [`compile`] walks the nodes in order and keeps the shared bookkeeping (slots, layouts of
//! the inputs); the per-op work is one function per op family in `compile/ops.rs`, the value
//! kinds in `compile/plan.rs`.

mod ops;
mod plan;

use super::network::{
    DelayLink, Kind, Layout, Network, Node, Op, CHUNK_BYTES, MAX_CHUNK, PASS_BYTES,
};
use super::value::FromTensor;
use crate::error::{Result, SnnError};
use crate::format::{Graph, ModelFile, NodeParams, NodeSpec, OpKind, Src, Tensor};
use crate::numeric::{Precision, Value};
use ops::{
    compile_add, compile_conv, compile_flatten, compile_linear, compile_neuron, compile_pool,
    compile_scale,
};
use plan::plan;

fn internal(node: &str, op: &str, what: &str) -> SnnError {
    SnnError::Internal(format!("node '{node}' ({op}): {what}"))
}

/// `[C, H, W]` of a value: itself, `[C, 1, L]` for a 1-d value `[C, L]`; None for `[F]`.
fn chw(shape: &[usize]) -> Option<(usize, usize, usize)> {
    match *shape {
        [c, h, w] => Some((c, h, w)),
        [c, l] => Some((c, 1, l)),
        _ => None,
    }
}

fn layout_of(shape: &[usize]) -> Layout {
    match chw(shape) {
        Some((c, h, w)) => Layout::Hwc { c, h, w },
        None => Layout::Flat { perm: None },
    }
}

/// `map[k]` = internal index in layout `to` of the element at internal index `k` of layout
/// `from` (None when the layouts are equal).
fn relayout_map(from: &Layout, to: &Layout, len: usize) -> Option<Vec<u32>> {
    if from == to {
        return None;
    }
    let mut inv = vec![0u32; len];
    for k in 0..len {
        inv[to.torch_index(k)] = k as u32;
    }
    Some((0..len).map(|k| inv[from.torch_index(k)]).collect())
}

/// One node as its op's compile step sees it: the spec and tensors, and where its inputs are.
struct NodeCx<'a> {
    spec: &'a NodeSpec,
    params: &'a NodeParams,
    precision: Precision,
    /// Shape of the first input (torch layout).
    in_shape: &'a [usize],
    /// Layouts of the inputs read this step (none for a delay, linked after the walk).
    in_layouts: Vec<Layout>,
    /// Slots of those inputs.
    inputs: Vec<usize>,
    /// Elements of the node's value.
    len: usize,
}

impl<'a> NodeCx<'a> {
    fn new<V>(
        g: &'a Graph,
        spec: &'a NodeSpec,
        params: &'a NodeParams,
        nodes: &[Node<V>],
        input_layout: &Layout,
    ) -> NodeCx<'a> {
        // a delay's source may come later; it is linked after every node is compiled
        let srcs: &[Src] = if spec.op == OpKind::Delay {
            &[]
        } else {
            &spec.inputs
        };
        let in_layouts = srcs
            .iter()
            .map(|&s| match s {
                Src::Input => input_layout.clone(),
                Src::Node(j) => nodes[j].layout.clone(),
            })
            .collect();
        let inputs = srcs
            .iter()
            .map(|&s| match s {
                Src::Input => 0usize,
                Src::Node(j) => nodes[j].slot,
            })
            .collect();
        NodeCx {
            spec,
            params,
            precision: g.precision,
            in_shape: g.src_shape(spec.inputs[0]),
            in_layouts,
            inputs,
            len: spec.shape.iter().product(),
        }
    }

    fn err(&self, what: &str) -> SnnError {
        internal(&self.spec.name, self.spec.op.as_str(), what)
    }

    fn int(&self) -> bool {
        self.precision == Precision::Int
    }

    fn weight(&self) -> Result<&'a Tensor> {
        self.params
            .get("weight")
            .ok_or_else(|| self.err("missing weight"))
    }

    /// An optional tensor as values of type `V`.
    fn vec_of<V: FromTensor>(&self, field: &str) -> Result<Option<Vec<V>>> {
        match self.params.get(field) {
            None => Ok(None),
            Some(t) => V::from_tensor(&t.data)
                .map(Some)
                .ok_or_else(|| self.err(&format!("tensor '{field}' dtype"))),
        }
    }

    /// A required tensor as values of type `V`.
    fn req<V: FromTensor>(&self, field: &str) -> Result<Vec<V>> {
        self.vec_of(field)?
            .ok_or_else(|| self.err(&format!("missing '{field}'")))
    }
}

/// What an op's compile step gives the walk.
struct OpStep<V> {
    op: Op<V>,
    /// Internal layout of the node's value.
    layout: Layout,
    /// The slot shared with an input (a flatten's); None: a slot of its own.
    shares: Option<usize>,
    fanout_total: u64,
    dense_macs: u64,
}

impl<V> OpStep<V> {
    fn new(op: Op<V>, layout: Layout) -> OpStep<V> {
        OpStep {
            op,
            layout,
            shares: None,
            fanout_total: 0,
            dense_macs: 0,
        }
    }

    /// A weighted op (linear, conv): every synaptic operation is a dense MAC too.
    fn counted(op: Op<V>, layout: Layout, fanout_total: u64) -> OpStep<V> {
        OpStep {
            fanout_total,
            dense_macs: fanout_total,
            ..OpStep::new(op, layout)
        }
    }
}

fn compile_op<V: Value + FromTensor>(cx: &NodeCx<'_>) -> Result<OpStep<V>> {
    match cx.spec.op {
        OpKind::Linear => compile_linear(cx),
        OpKind::Conv2d | OpKind::Conv1d => compile_conv(cx),
        OpKind::AvgPool2d | OpKind::SumPool2d | OpKind::AvgPool1d | OpKind::SumPool1d => {
            compile_pool(cx)
        }
        OpKind::Flatten => Ok(compile_flatten(cx)),
        OpKind::Add => Ok(compile_add(cx)),
        OpKind::Scale => compile_scale(cx),
        // the value is written at the end of each step (`step::advance_delays`)
        OpKind::Delay => Ok(OpStep::new(Op::Delay, layout_of(&cx.spec.shape))),
        OpKind::DsrIf | OpKind::DsrLif | OpKind::DspikeLif | OpKind::Integrate => {
            compile_neuron(cx)
        }
    }
}

/// Compiles a validated model file for values of type `V` (must match the precision).
pub(crate) fn compile<V: Value + FromTensor>(mf: &ModelFile) -> Result<Network<V>> {
    let g: &Graph = &mf.graph;
    if g.precision != V::PRECISION {
        return Err(SnnError::Internal("precision mismatch in compile".into()));
    }
    super::limits::check_graph(mf)?;
    let input_layout = layout_of(&g.input.shape);
    let input_len: usize = g.input.shape.iter().product();

    let mut nodes: Vec<Node<V>> = Vec::with_capacity(g.nodes.len());
    let mut slot_len = vec![input_len];
    for (ni, spec) in g.nodes.iter().enumerate() {
        let cx = NodeCx::new(g, spec, &mf.params[ni], &nodes, &input_layout);
        let step = compile_op::<V>(&cx)?;
        let slot = step.shares.unwrap_or_else(|| {
            slot_len.push(cx.len);
            slot_len.len() - 1
        });
        nodes.push(Node {
            name: spec.name.clone(),
            kind: spec.op,
            shape: spec.shape.clone(),
            len: cx.len,
            layout: step.layout,
            inputs: cx.inputs,
            slot,
            op: step.op,
            fanout_total: step.fanout_total,
            dense_macs: step.dense_macs,
        });
    }

    let delays = link_delays(g, &nodes, &input_layout);
    let n_slots = slot_len.len();
    let slot_binary = binary_slots(&nodes, &delays, n_slots);
    let plan_static = plan(&nodes, &delays, n_slots, Kind::Static);
    let plan_dynamic = plan(&nodes, &delays, n_slots, Kind::Sparse);
    let max_len = slot_len.iter().copied().max().unwrap_or(1).max(1);
    let chunk = chunk_steps(&nodes, &slot_len, &delays);
    check_layouts(&nodes)?;
    Ok(Network {
        precision: g.precision,
        input_shape: g.input.shape.clone(),
        input_layout,
        input_len,
        nodes,
        slot_len,
        slot_binary,
        output: g.output,
        plan_static,
        plan_dynamic,
        max_len,
        chunk,
        delays,
    })
}

/// Delays: the source's value of each step, in the delay's layout.
fn link_delays<V>(g: &Graph, nodes: &[Node<V>], input_layout: &Layout) -> Vec<DelayLink> {
    let mut delays = Vec::new();
    for (ni, spec) in g.nodes.iter().enumerate() {
        if spec.op != OpKind::Delay {
            continue;
        }
        let (src_slot, src_layout) = match spec.inputs[0] {
            Src::Input => (0, input_layout.clone()),
            Src::Node(j) => (nodes[j].slot, nodes[j].layout.clone()),
        };
        let n = &nodes[ni];
        delays.push(DelayLink {
            node: ni,
            src: src_slot,
            dst: n.slot,
            map: relayout_map(&src_layout, &n.layout, n.len),
        });
    }
    delays
}

/// Which slots hold only 0/1 values: spiking nodes' and delays of them.
fn binary_slots<V>(nodes: &[Node<V>], delays: &[DelayLink], n_slots: usize) -> Vec<bool> {
    let mut slot_binary = vec![false; n_slots];
    for n in nodes {
        if n.kind.is_spiking() {
            slot_binary[n.slot] = true;
        }
    }
    for d in delays {
        slot_binary[d.dst] = slot_binary[d.src];
    }
    slot_binary
}

/// Steps per node-major chunk: as many as fit [`CHUNK_BYTES`] of slot values and keep one
/// node's pass within [`PASS_BYTES`], at most [`MAX_CHUNK`]; 1 with delays.
fn chunk_steps<V>(nodes: &[Node<V>], slot_len: &[usize], delays: &[DelayLink]) -> usize {
    let per_step: usize = slot_len.iter().sum::<usize>().max(1) * 4;
    // the largest pass of one node over a chunk: its inputs' and its own values, per step
    let pass: usize = nodes
        .iter()
        .map(|n| (n.inputs.iter().map(|&s| slot_len[s]).sum::<usize>() + slot_len[n.slot]) * 4)
        .max()
        .unwrap_or(4)
        .max(4);
    // a delay reads its source's previous step, so with delays the nodes run step by step
    if delays.is_empty() {
        (CHUNK_BYTES / per_step)
            .min(PASS_BYTES / pass)
            .clamp(1, MAX_CHUNK)
    } else {
        1
    }
}

/// Sanity: layouts of `[C, H, W]` and `[C, L]` nodes are HWC, of `[F]` nodes flat.
fn check_layouts<V>(nodes: &[Node<V>]) -> Result<()> {
    for n in nodes {
        if n.shape.len() >= 2 && !matches!(n.layout, Layout::Hwc { .. }) {
            return Err(internal(&n.name, n.kind.as_str(), "layout"));
        }
        if n.shape.len() == 1 && matches!(n.layout, Layout::Hwc { .. }) {
            return Err(internal(&n.name, n.kind.as_str(), "layout"));
        }
    }
    Ok(())
}

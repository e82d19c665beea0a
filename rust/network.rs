//! A validated graph compiled for the engine.
//!
//! * Values of `[C, H, W]` nodes are stored channels-last (HWC); `[F]` values are vectors.
//! * `flatten` of a `[C, H, W]` value keeps the HWC order: its `[F]` result is a permutation of
//!   torch's CHW flatten, recorded in its [`Layout`]. Whatever consumes it follows the
//!   permutation at compile time (a linear's weight columns, per-feature parameters), so the
//!   results equal torch's; outputs and recordings are written back in torch order.
//! * Linear weights are stored input-major `[in][out]`, conv kernels `[in_c][kh][kw][out_c]`,
//!   so the active inputs of a step scatter contiguous rows of output channels.
//! * Every value has a kind per input plan (doc §3): static, sparse or dense.

use std::sync::Arc;

use crate::buffer::WeightBuf;
use crate::error::{Result, SnnError};
use crate::graph::{fmt_shape, Graph, NodeParams, OpKind, Src, TensorData};
use crate::kernels::Geom;
use crate::model_file::ModelFile;
use crate::neurons::NeuronParams;
use crate::numeric::{Precision, Value, Weights};

/// Kind of a value (docs/model-format.md §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Static,
    Sparse,
    Dense,
}

/// Internal element order of a value.
#[derive(Debug, Clone, PartialEq)]
pub enum Layout {
    /// `[C, H, W]` stored channels-last: element `(c, y, x)` at `(y*W + x)*C + c`.
    Hwc { c: usize, h: usize, w: usize },
    /// `[F]`; `perm[k]` is the torch index of internal element `k` (`None`: identity).
    Flat { perm: Option<Arc<Vec<u32>>> },
}

impl Layout {
    /// Torch (C-order) index of internal element `k`.
    #[inline]
    pub fn torch_index(&self, k: usize) -> usize {
        match self {
            Layout::Hwc { c, h, w } => (k % c) * h * w + k / c,
            Layout::Flat { perm: Some(p) } => p[k] as usize,
            Layout::Flat { perm: None } => k,
        }
    }

    /// `map[k]` = torch index of internal element `k`, for `n` elements.
    pub fn torch_map(&self, n: usize) -> Vec<u32> {
        (0..n).map(|k| self.torch_index(k) as u32).collect()
    }
}

/// A linear node.
#[derive(Debug, Clone)]
pub struct LinearOp<V> {
    pub w: Weights,
    pub n_in: usize,
    pub n_out: usize,
    pub bias: Option<Vec<V>>,
    /// max over outputs of sum over inputs of |w| (int precision; 0 for float).
    pub w_abs: i64,
    /// max |bias| (int precision).
    pub bias_abs: i64,
    /// max |w| (int precision).
    pub w_max: i64,
}

/// A conv2d node.
#[derive(Debug, Clone)]
pub struct ConvOp<V> {
    pub w: Weights,
    pub g: Geom,
    pub bias: Option<Vec<V>>,
    /// Output positions reached from each input position (`h*w`, row-major).
    pub fanout: Vec<u32>,
    pub w_abs: i64,
    pub bias_abs: i64,
}

/// An avgpool2d / sumpool2d node.
#[derive(Debug, Clone)]
pub struct PoolOp {
    pub avg: bool,
    pub g: Geom,
    pub m: i32,
    pub f: u32,
    /// Windows containing each input position (`h*w`).
    pub fanout: Vec<u32>,
}

/// An add node.
#[derive(Debug, Clone)]
pub struct AddOp {
    /// Per input: internal index of the input -> internal index of the output, when the input
    /// layout differs from the output's (a flatten on one side only).
    pub maps: Vec<Option<Vec<u32>>>,
}

/// A scale node (per-channel parameters expanded to one period).
#[derive(Debug, Clone)]
pub struct ScaleOp<V> {
    pub mul: Vec<V>,
    pub shift: Vec<V>,
    pub zero_shift: bool,
    pub f: u32,
    pub period: usize,
}

/// A neuron or integrate node.
#[derive(Debug, Clone)]
pub struct NeuronOp<V> {
    pub params: NeuronParams<V>,
    pub period: usize,
}

/// The compiled op of a node.
#[derive(Debug, Clone)]
pub enum Op<V> {
    Linear(LinearOp<V>),
    Conv(ConvOp<V>),
    Pool(PoolOp),
    Flatten,
    Add(AddOp),
    Scale(ScaleOp<V>),
    Neuron(NeuronOp<V>),
}

/// A compiled node.
#[derive(Debug, Clone)]
pub struct Node<V> {
    pub name: String,
    pub kind: OpKind,
    /// Torch shape per sample.
    pub shape: Vec<usize>,
    pub len: usize,
    pub layout: Layout,
    /// Slots of the inputs (slot 0 is the network input).
    pub inputs: Vec<usize>,
    /// Slot holding this node's value (a flatten shares its input's slot).
    pub slot: usize,
    pub op: Op<V>,
    /// Sum of the fan-outs of all input elements (linear, conv, pools); 0 otherwise.
    pub fanout_total: u64,
    /// Dense MACs of the equivalent ANN (linear/conv), else 0.
    pub dense_macs: u64,
}

/// Value kinds per slot for one way of feeding the input.
#[derive(Debug, Clone)]
pub struct Plan {
    pub slot_kind: Vec<Kind>,
}

/// A compiled network with values of type `V` (`f32` or `i32`).
#[derive(Debug, Clone)]
pub struct Network<V> {
    pub precision: Precision,
    pub input_shape: Vec<usize>,
    pub input_layout: Layout,
    pub input_len: usize,
    pub nodes: Vec<Node<V>>,
    pub n_slots: usize,
    /// Element count of each slot.
    pub slot_len: Vec<usize>,
    /// Slots whose values are always 0 or 1 (spikes of a neuron, possibly flattened).
    pub slot_binary: Vec<bool>,
    /// Index of the output node.
    pub output: usize,
    /// Kinds when the input is static (run_static).
    pub plan_static: Plan,
    /// Kinds when the input changes per step (frames, events).
    pub plan_dynamic: Plan,
    /// Largest node value (scratch sizes).
    pub max_len: usize,
    /// Steps run per node before the next node (node-major chunks); bounds the per-sample
    /// buffers to about [`CHUNK_BYTES`].
    pub chunk: usize,
}

/// Memory budget of the per-step value buffers of one sample state.
pub const CHUNK_BYTES: usize = 4 << 20;
/// Longest chunk of steps.
pub const MAX_CHUNK: usize = 32;

/// Conversion of file tensors to the value type.
pub trait FromTensor: Sized {
    fn from_tensor(t: &TensorData) -> Option<Vec<Self>>;
}
impl FromTensor for f32 {
    fn from_tensor(t: &TensorData) -> Option<Vec<f32>> {
        match t {
            TensorData::F32(v) => Some(v.clone()),
            _ => None,
        }
    }
}
impl FromTensor for i32 {
    fn from_tensor(t: &TensorData) -> Option<Vec<i32>> {
        match t {
            TensorData::I32(v) => Some(v.clone()),
            _ => None,
        }
    }
}

fn internal(node: &str, op: &str, what: &str) -> SnnError {
    SnnError::Internal(format!("node '{node}' ({op}): {what}"))
}

fn layout_of(shape: &[usize]) -> Layout {
    if shape.len() == 3 {
        Layout::Hwc {
            c: shape[0],
            h: shape[1],
            w: shape[2],
        }
    } else {
        Layout::Flat { perm: None }
    }
}

/// Expands a per-channel parameter (`[C]` or `[1]`) to one period of the value's internal
/// layout: `C` entries for HWC values, `F` entries (permuted) for flat values.
fn expand_param<V: Copy>(p: &[V], layout: &Layout, len: usize) -> (Vec<V>, usize) {
    let at = |c: usize| if p.len() == 1 { p[0] } else { p[c] };
    match layout {
        Layout::Hwc { c, .. } => ((0..*c).map(at).collect(), *c),
        Layout::Flat { .. } => (
            (0..len).map(|k| at(layout.torch_index(k))).collect(),
            len.max(1),
        ),
    }
}

fn weights_from(t: &TensorData, relayout: impl Fn(usize) -> usize, n: usize) -> Option<Weights> {
    // `relayout(k)` = index in the file tensor of engine element k.
    Some(match t {
        TensorData::F32(v) => {
            Weights::F32(WeightBuf::new((0..n).map(|k| v[relayout(k)]).collect()))
        }
        TensorData::I8(v) => Weights::I8(WeightBuf::new((0..n).map(|k| v[relayout(k)]).collect())),
        TensorData::I16(v) => {
            Weights::I16(WeightBuf::new((0..n).map(|k| v[relayout(k)]).collect()))
        }
        _ => return None,
    })
}

fn abs_of(t: &TensorData, k: usize) -> i64 {
    match t {
        TensorData::I8(v) => (v[k] as i64).abs(),
        TensorData::I16(v) => (v[k] as i64).abs(),
        TensorData::I32(v) => (v[k] as i64).abs(),
        _ => 0,
    }
}

/// Compiles a validated model file for values of type `V` (must match the precision).
pub fn compile<V: Value + FromTensor>(mf: &ModelFile) -> Result<Network<V>> {
    let g: &Graph = &mf.graph;
    if g.precision != V::PRECISION {
        return Err(SnnError::Internal("precision mismatch in compile".into()));
    }
    let input_layout = layout_of(&g.input.shape);
    let input_len: usize = g.input.shape.iter().product();

    let mut nodes: Vec<Node<V>> = Vec::with_capacity(g.nodes.len());
    let mut slot_len = vec![input_len];
    let src_slot = |nodes: &Vec<Node<V>>, s: Src| match s {
        Src::Input => 0usize,
        Src::Node(j) => nodes[j].slot,
    };

    for (ni, spec) in g.nodes.iter().enumerate() {
        let params: &NodeParams = &mf.params[ni];
        let name = spec.name.as_str();
        let opn = spec.op.as_str();
        let in_layouts: Vec<Layout> = spec
            .inputs
            .iter()
            .map(|&s| match s {
                Src::Input => input_layout.clone(),
                Src::Node(j) => nodes[j].layout.clone(),
            })
            .collect();
        let in_shape = g.src_shape(spec.inputs[0]).to_vec();
        let len: usize = spec.shape.iter().product();
        let inputs: Vec<usize> = spec.inputs.iter().map(|&s| src_slot(&nodes, s)).collect();
        let a = &spec.attrs;
        let vec_of = |field: &str| -> Result<Option<Vec<V>>> {
            match params.get(field) {
                None => Ok(None),
                Some(t) => V::from_tensor(&t.data)
                    .map(Some)
                    .ok_or_else(|| internal(name, opn, &format!("tensor '{field}' dtype"))),
            }
        };
        let req = |field: &str| -> Result<Vec<V>> {
            vec_of(field)?.ok_or_else(|| internal(name, opn, &format!("missing '{field}'")))
        };

        let mut layout = layout_of(&spec.shape);
        let mut slot = slot_len.len();
        let mut fanout_total = 0u64;
        let mut dense_macs = 0u64;
        let op: Op<V> = match spec.op {
            OpKind::Linear => {
                let wt = params
                    .get("weight")
                    .ok_or_else(|| internal(name, opn, "missing weight"))?;
                let (n_in, n_out) = (a.in_features, a.out_features);
                let lin = &in_layouts[0];
                // engine element k = i*n_out + o  <-  file element o*n_in + torch(i)
                let w = weights_from(
                    &wt.data,
                    |k| (k % n_out) * n_in + lin.torch_index(k / n_out),
                    n_in * n_out,
                )
                .ok_or_else(|| internal(name, opn, "weight dtype"))?;
                let mut w_abs = 0i64;
                let mut w_max = 0i64;
                if g.precision == Precision::Int {
                    for o in 0..n_out {
                        let s: i64 = (0..n_in).map(|i| abs_of(&wt.data, o * n_in + i)).sum();
                        w_abs = w_abs.max(s);
                    }
                    w_max = (0..n_in * n_out)
                        .map(|k| abs_of(&wt.data, k))
                        .max()
                        .unwrap_or(0);
                }
                let bias = vec_of("bias")?;
                let bias_abs = params
                    .get("bias")
                    .map(|t| (0..n_out).map(|k| abs_of(&t.data, k)).max().unwrap_or(0))
                    .unwrap_or(0);
                fanout_total = (n_in as u64) * (n_out as u64);
                dense_macs = fanout_total;
                Op::Linear(LinearOp {
                    w,
                    n_in,
                    n_out,
                    bias,
                    w_abs,
                    bias_abs,
                    w_max,
                })
            }
            OpKind::Conv2d => {
                let wt = params
                    .get("weight")
                    .ok_or_else(|| internal(name, opn, "missing weight"))?;
                let (c, h, w) = (in_shape[0], in_shape[1], in_shape[2]);
                let (co, kh, kw) = (a.out_channels, a.kernel[0], a.kernel[1]);
                let geom = Geom {
                    c,
                    h,
                    w,
                    co,
                    ho: spec.shape[1],
                    wo: spec.shape[2],
                    kh,
                    kw,
                    sh: a.stride[0],
                    sw: a.stride[1],
                    ph: a.padding[0],
                    pw: a.padding[1],
                };
                let n = co * c * kh * kw;
                // engine [c][ky][kx][oc]  <-  file [oc][c][ky][kx]
                let wts = weights_from(
                    &wt.data,
                    |k| {
                        let oc = k % co;
                        let r = k / co; // (c*kh + ky)*kw + kx
                        oc * c * kh * kw + r
                    },
                    n,
                )
                .ok_or_else(|| internal(name, opn, "weight dtype"))?;
                let mut w_abs = 0i64;
                if g.precision == Precision::Int {
                    let per = c * kh * kw;
                    for oc in 0..co {
                        let s: i64 = (0..per).map(|r| abs_of(&wt.data, oc * per + r)).sum();
                        w_abs = w_abs.max(s);
                    }
                }
                let fanout: Vec<u32> = (0..h * w)
                    .map(|p| geom.fanout(p / w, p % w) as u32)
                    .collect();
                let pos_total: u64 = fanout.iter().map(|&f| f as u64).sum();
                fanout_total = pos_total * c as u64 * co as u64;
                dense_macs = fanout_total;
                let bias = vec_of("bias")?;
                let bias_abs = params
                    .get("bias")
                    .map(|t| (0..co).map(|k| abs_of(&t.data, k)).max().unwrap_or(0))
                    .unwrap_or(0);
                Op::Conv(ConvOp {
                    w: wts,
                    g: geom,
                    bias,
                    fanout,
                    w_abs,
                    bias_abs,
                })
            }
            OpKind::AvgPool2d | OpKind::SumPool2d => {
                let (c, h, w) = (in_shape[0], in_shape[1], in_shape[2]);
                let geom = Geom {
                    c,
                    h,
                    w,
                    co: c,
                    ho: spec.shape[1],
                    wo: spec.shape[2],
                    kh: a.kernel[0],
                    kw: a.kernel[1],
                    sh: a.stride[0],
                    sw: a.stride[1],
                    ph: 0,
                    pw: 0,
                };
                let fanout: Vec<u32> = (0..h * w)
                    .map(|p| geom.fanout(p / w, p % w) as u32)
                    .collect();
                fanout_total = fanout.iter().map(|&f| f as u64).sum::<u64>() * c as u64;
                Op::Pool(PoolOp {
                    avg: spec.op == OpKind::AvgPool2d,
                    g: geom,
                    m: a.m,
                    f: a.f,
                    fanout,
                })
            }
            OpKind::Flatten => {
                slot = inputs[0];
                layout = match &in_layouts[0] {
                    Layout::Hwc { c, h, w } => {
                        let (c, h, w) = (*c, *h, *w);
                        let perm: Vec<u32> = (0..c * h * w)
                            .map(|k| {
                                let ch = k % c;
                                let pos = k / c;
                                (ch * h * w + pos) as u32
                            })
                            .collect();
                        if c == 1 {
                            Layout::Flat { perm: None }
                        } else {
                            Layout::Flat {
                                perm: Some(Arc::new(perm)),
                            }
                        }
                    }
                    other => other.clone(),
                };
                Op::Flatten
            }
            OpKind::Add => {
                layout = in_layouts[0].clone();
                let mut maps = Vec::with_capacity(inputs.len());
                // inverse of the output layout: torch index -> internal index
                let inv: Option<Vec<u32>> = match &layout {
                    Layout::Flat { perm: Some(p) } => {
                        let mut inv = vec![0u32; p.len()];
                        for (k, &t) in p.iter().enumerate() {
                            inv[t as usize] = k as u32;
                        }
                        Some(inv)
                    }
                    _ => None,
                };
                for il in &in_layouts {
                    if *il == layout {
                        maps.push(None);
                    } else {
                        let m: Vec<u32> = (0..len)
                            .map(|k| {
                                let t = il.torch_index(k);
                                match &inv {
                                    Some(inv) => inv[t],
                                    None => t as u32,
                                }
                            })
                            .collect();
                        maps.push(Some(m));
                    }
                }
                Op::Add(AddOp { maps })
            }
            OpKind::Scale => {
                layout = in_layouts[0].clone();
                let mul_field = if g.precision == Precision::Int {
                    "m"
                } else {
                    "scale"
                };
                let (mul, period) = expand_param(&req(mul_field)?, &layout, len);
                let shift_raw = vec_of("shift")?;
                let zero_shift = shift_raw
                    .as_ref()
                    .is_none_or(|s| s.iter().all(|v| !v.is_nonzero()));
                let shift = match &shift_raw {
                    Some(s) => expand_param(s, &layout, len).0,
                    None => vec![V::ZERO; period],
                };
                Op::Scale(ScaleOp {
                    mul,
                    shift,
                    zero_shift,
                    f: a.f,
                    period,
                })
            }
            OpKind::DsrIf | OpKind::DsrLif | OpKind::DspikeLif | OpKind::Integrate => {
                layout = in_layouts[0].clone();
                let int = g.precision == Precision::Int;
                let ex = |field: &str| -> Result<(Vec<V>, usize)> {
                    Ok(expand_param(&req(field)?, &layout, len))
                };
                let (params, period) = match spec.op {
                    OpKind::DsrIf => {
                        let (theta, p) = ex("theta")?;
                        let (fire, _) = ex("fire")?;
                        (NeuronParams::If { theta, fire }, p)
                    }
                    OpKind::DsrLif => {
                        let (theta, p) = ex("theta")?;
                        let (fire, _) = ex("fire")?;
                        let (leak, _) = ex(if int { "leak_m" } else { "leak" })?;
                        let (gain, _) = ex(if int { "gain_m" } else { "gain" })?;
                        (
                            NeuronParams::Lif {
                                theta,
                                fire,
                                leak,
                                gain,
                                f: a.f,
                            },
                            p,
                        )
                    }
                    OpKind::DspikeLif => {
                        let (fire, p) = ex("fire")?;
                        let (leak, _) = ex(if int { "leak_m" } else { "leak" })?;
                        (NeuronParams::Dspike { fire, leak, f: a.f }, p)
                    }
                    _ => match vec_of(if int { "leak_m" } else { "leak" })? {
                        Some(l) => {
                            let (leak, p) = expand_param(&l, &layout, len);
                            (NeuronParams::LeakyIntegrate { leak, f: a.f }, p)
                        }
                        None => (NeuronParams::Integrate, len.max(1)),
                    },
                };
                Op::Neuron(NeuronOp { params, period })
            }
        };
        if slot == slot_len.len() {
            slot_len.push(len);
        }
        nodes.push(Node {
            name: spec.name.clone(),
            kind: spec.op,
            shape: spec.shape.clone(),
            len,
            layout,
            inputs,
            slot,
            op,
            fanout_total,
            dense_macs,
        });
    }

    let n_slots = slot_len.len();
    let mut slot_binary = vec![false; n_slots];
    for n in &nodes {
        if n.kind.is_spiking() {
            slot_binary[n.slot] = true;
        }
    }
    let plan_static = plan(&nodes, n_slots, Kind::Static);
    let plan_dynamic = plan(&nodes, n_slots, Kind::Sparse);
    let max_len = slot_len.iter().copied().max().unwrap_or(1).max(1);
    let per_step: usize = slot_len.iter().sum::<usize>().max(1) * 4;
    let chunk = (CHUNK_BYTES / per_step).clamp(1, MAX_CHUNK);
    // sanity: layouts of [C,H,W] nodes are HWC
    for n in &nodes {
        if n.shape.len() == 3 && !matches!(n.layout, Layout::Hwc { .. }) {
            return Err(internal(&n.name, n.kind.as_str(), "layout"));
        }
        if n.shape.len() == 1 && matches!(n.layout, Layout::Hwc { .. }) {
            return Err(internal(&n.name, n.kind.as_str(), "layout"));
        }
    }
    Ok(Network {
        precision: g.precision,
        input_shape: g.input.shape.clone(),
        input_layout,
        input_len,
        nodes,
        n_slots,
        slot_len,
        slot_binary,
        output: g.output,
        plan_static,
        plan_dynamic,
        max_len,
        chunk,
    })
}

/// Value kinds of every slot when the input has kind `input` (doc §3).
fn plan<V>(nodes: &[Node<V>], n_slots: usize, input: Kind) -> Plan {
    let mut k = vec![Kind::Dense; n_slots];
    k[0] = input;
    for n in nodes {
        let ins: Vec<Kind> = n.inputs.iter().map(|&s| k[s]).collect();
        let all = |want: Kind| ins.iter().all(|&x| x == want);
        let kind = match &n.op {
            Op::Flatten => ins[0],
            Op::Linear(_) | Op::Conv(_) => {
                if all(Kind::Static) {
                    Kind::Static
                } else {
                    Kind::Dense
                }
            }
            Op::Pool(_) | Op::Add(_) => {
                if all(Kind::Static) {
                    Kind::Static
                } else if all(Kind::Sparse) {
                    Kind::Sparse
                } else {
                    Kind::Dense
                }
            }
            Op::Scale(s) => {
                if all(Kind::Static) {
                    Kind::Static
                } else if all(Kind::Sparse) && s.zero_shift {
                    Kind::Sparse
                } else {
                    Kind::Dense
                }
            }
            Op::Neuron(_) => {
                if n.kind == OpKind::Integrate {
                    Kind::Dense
                } else {
                    Kind::Sparse
                }
            }
        };
        k[n.slot] = kind;
    }
    Plan { slot_kind: k }
}

impl<V> Network<V> {
    /// Index of the node called `name`.
    pub fn node_index(&self, name: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.name == name)
    }

    /// Describes a node's shape for messages.
    pub fn describe(&self, i: usize) -> String {
        format!("{} {}", self.nodes[i].name, fmt_shape(&self.nodes[i].shape))
    }
}

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

use crate::format::OpKind;
use crate::kernels::Geom;
use crate::neurons::NeuronParams;
use crate::numeric::{Precision, Weights};

/// Kind of a value (docs/model-format.md §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Static,
    Sparse,
    Dense,
}

/// Internal element order of a value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Layout {
    /// `[C, H, W]` stored channels-last: element `(c, y, x)` at `(y*W + x)*C + c`.
    Hwc { c: usize, h: usize, w: usize },
    /// `[F]`; `perm[k]` is the torch index of internal element `k` (`None`: identity).
    Flat { perm: Option<Arc<Vec<u32>>> },
}

impl Layout {
    /// Torch (C-order) index of internal element `k`.
    #[inline]
    pub(crate) fn torch_index(&self, k: usize) -> usize {
        match self {
            Layout::Hwc { c, h, w } => (k % c) * h * w + k / c,
            Layout::Flat { perm: Some(p) } => p[k] as usize,
            Layout::Flat { perm: None } => k,
        }
    }

    /// `map[k]` = torch index of internal element `k`, for `n` elements.
    pub(crate) fn torch_map(&self, n: usize) -> Vec<u32> {
        (0..n).map(|k| self.torch_index(k) as u32).collect()
    }
}

/// A linear node.
#[derive(Debug, Clone)]
pub(crate) struct LinearOp<V> {
    pub w: Weights,
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
pub(crate) struct ConvOp<V> {
    pub w: Weights,
    pub g: Geom,
    pub bias: Option<Vec<V>>,
    /// Output positions reached from each input position (`h*w`, row-major).
    pub fanout: Vec<u32>,
    pub w_abs: i64,
    pub bias_abs: i64,
    /// max |w| (int precision; 0 for float).
    pub w_max: i64,
    /// int8 kernels on a CPU with AVX-512 VNNI: the kernel packed for the dense kernel
    /// (`crate::kernels::vnni`).
    pub packed: Option<Vec<i8>>,
}

/// An avgpool2d / sumpool2d node.
#[derive(Debug, Clone)]
pub(crate) struct PoolOp {
    pub avg: bool,
    pub g: Geom,
    pub m: i32,
    pub f: u32,
    /// Windows containing each input position (`h*w`).
    pub fanout: Vec<u32>,
    /// The fan-out when every input position has the same (e.g. a 2x2 pool of stride 2 over an
    /// even input): the window count of a step is then the active count times it.
    pub uniform_fanout: Option<u32>,
}

/// An add node.
#[derive(Debug, Clone)]
pub(crate) struct AddOp {
    /// Per input: internal index of the input -> internal index of the output, when the input
    /// layout differs from the output's (a flatten on one side only).
    pub maps: Vec<Option<Vec<u32>>>,
}

/// A scale node (per-channel parameters expanded to one period).
#[derive(Debug, Clone)]
pub(crate) struct ScaleOp<V> {
    pub mul: Vec<V>,
    pub shift: Vec<V>,
    pub zero_shift: bool,
    pub f: u32,
    pub period: usize,
}

/// A neuron or integrate node.
#[derive(Debug, Clone)]
pub(crate) struct NeuronOp<V> {
    pub params: NeuronParams<V>,
    pub period: usize,
}

/// The compiled op of a node.
#[derive(Debug, Clone)]
pub(crate) enum Op<V> {
    Linear(LinearOp<V>),
    Conv(ConvOp<V>),
    Pool(PoolOp),
    Flatten,
    Add(AddOp),
    Scale(ScaleOp<V>),
    Neuron(NeuronOp<V>),
    /// A one-step delay (its value is written at the end of each step, see [`DelayLink`]).
    Delay,
}

/// A delay node's link: at the end of every step the value of slot `src` is copied into slot
/// `dst` (through `map` when the two layouts differ), where the next step reads it.
#[derive(Debug, Clone)]
pub(crate) struct DelayLink {
    /// Index of the delay node.
    pub node: usize,
    pub src: usize,
    pub dst: usize,
    /// Internal index of the source -> internal index of the delay's value.
    pub map: Option<Vec<u32>>,
}

/// A compiled node.
#[derive(Debug, Clone)]
pub(crate) struct Node<V> {
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
pub(crate) struct Plan {
    pub slot_kind: Vec<Kind>,
}

/// A compiled network with values of type `V` (`f32` or `i32`).
#[derive(Debug, Clone)]
pub(crate) struct Network<V> {
    pub precision: Precision,
    pub input_shape: Vec<usize>,
    pub input_layout: Layout,
    pub input_len: usize,
    pub nodes: Vec<Node<V>>,
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
    /// buffers to about [`CHUNK_BYTES`] and one node's pass to about [`PASS_BYTES`]. 1 when the
    /// graph has delays.
    pub chunk: usize,
    /// The delay nodes' links (empty for a graph without delays).
    pub delays: Vec<DelayLink>,
}

/// Memory budget of the per-step value buffers of one sample state.
pub(crate) const CHUNK_BYTES: usize = 4 << 20;
/// Longest chunk of steps.
pub(crate) const MAX_CHUNK: usize = 32;
/// Bytes one node's pass over a chunk may touch (its inputs' and its own values): a quarter of
/// a 2 MiB L2 cache, so that a wide conv layer's maps are still cached when the next node reads
/// them. Weighted layers with small values (an MLP) keep long chunks, which stream their
/// weights once per chunk; conv layers with large maps get short ones (measured on the
/// event-camera network B: 0.81 -> 0.73 ms per sample at batch 1).
pub(crate) const PASS_BYTES: usize = 512 << 10;

impl<V> Network<V> {
    /// Index of the node called `name`.
    /// Whether some node is large enough to split a step's work across threads (a conv of
    /// at least `ops::conv::PAR_MIN_SOPS` dense MACs per step, a neuron layer of at least
    /// `ops::neuron::PAR_MIN_ELEMS` elements): otherwise a batch of one runs on one thread,
    /// since a team would only add hand-off costs.
    pub(crate) fn splits_across_threads(&self) -> bool {
        self.nodes.iter().any(|n| match &n.op {
            Op::Conv(_) => n.fanout_total >= super::ops::conv::PAR_MIN_SOPS,
            Op::Neuron(_) => n.len >= super::ops::neuron::PAR_MIN_ELEMS,
            _ => false,
        })
    }

    pub(crate) fn node_index(&self, name: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.name == name)
    }
}

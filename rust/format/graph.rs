//! The validated graph of a network file (docs/model-format.md §1-2): the input, the nodes in
//! topological order with their attributes and per-sample shapes, and the size limits every
//! reader applies.

use crate::numeric::Precision;

/// Largest number of elements allowed in one node value or tensor (indices are u32).
pub const MAX_ELEMS: usize = 1 << 31;

/// How the network's input is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputKind {
    /// An analog tensor applied unchanged at every step.
    Static,
    /// Per-step integer event counts.
    Events,
}

impl InputKind {
    pub fn as_str(self) -> &'static str {
        match self {
            InputKind::Static => "static",
            InputKind::Events => "events",
        }
    }
}

/// The `input` entry of the graph.
#[derive(Debug, Clone, PartialEq)]
pub struct InputSpec {
    pub shape: Vec<usize>,
    pub kind: InputKind,
    pub scale: Option<f64>,
}

/// The ops of docs/model-format.md §2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpKind {
    Linear,
    Conv2d,
    AvgPool2d,
    SumPool2d,
    Flatten,
    Add,
    Scale,
    DsrIf,
    DsrLif,
    DspikeLif,
    Integrate,
}

impl OpKind {
    pub fn parse(s: &str) -> Option<OpKind> {
        Some(match s {
            "linear" => OpKind::Linear,
            "conv2d" => OpKind::Conv2d,
            "avgpool2d" => OpKind::AvgPool2d,
            "sumpool2d" => OpKind::SumPool2d,
            "flatten" => OpKind::Flatten,
            "add" => OpKind::Add,
            "scale" => OpKind::Scale,
            "dsr_if" => OpKind::DsrIf,
            "dsr_lif" => OpKind::DsrLif,
            "dspike_lif" => OpKind::DspikeLif,
            "integrate" => OpKind::Integrate,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            OpKind::Linear => "linear",
            OpKind::Conv2d => "conv2d",
            OpKind::AvgPool2d => "avgpool2d",
            OpKind::SumPool2d => "sumpool2d",
            OpKind::Flatten => "flatten",
            OpKind::Add => "add",
            OpKind::Scale => "scale",
            OpKind::DsrIf => "dsr_if",
            OpKind::DsrLif => "dsr_lif",
            OpKind::DspikeLif => "dspike_lif",
            OpKind::Integrate => "integrate",
        }
    }

    /// Spiking neurons (`dsr_if`, `dsr_lif`, `dspike_lif`).
    pub fn is_spiking(self) -> bool {
        matches!(self, OpKind::DsrIf | OpKind::DsrLif | OpKind::DspikeLif)
    }

    /// Ops that keep a membrane (`integrate` included).
    pub fn has_state(self) -> bool {
        self.is_spiking() || self == OpKind::Integrate
    }

    pub fn is_weighted(self) -> bool {
        matches!(self, OpKind::Linear | OpKind::Conv2d)
    }
}

/// Where a node's input comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Src {
    Input,
    /// Index into [`Graph::nodes`] (topological order).
    Node(usize),
}

/// Integer attributes of a node (those that do not apply to its op are zero).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attrs {
    pub in_features: usize,
    pub out_features: usize,
    pub in_channels: usize,
    pub out_channels: usize,
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub padding: [usize; 2],
    /// 4, 8 or 16 for int linear/conv; 0 otherwise.
    pub weight_bits: u32,
    /// avgpool2d multiplier (int).
    pub m: i32,
    /// fixed-point fraction bits (int avgpool2d, scale, dsr_lif, dspike_lif).
    pub f: u32,
}

/// A validated node.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeSpec {
    pub name: String,
    pub op: OpKind,
    pub inputs: Vec<Src>,
    /// Output shape per sample, torch layout (`[C, H, W]` or `[F]`).
    pub shape: Vec<usize>,
    pub attrs: Attrs,
}

/// A validated graph with nodes in topological order.
#[derive(Debug, Clone, PartialEq)]
pub struct Graph {
    pub precision: Precision,
    pub input: InputSpec,
    pub nodes: Vec<NodeSpec>,
    /// Index of the output node in `nodes`.
    pub output: usize,
}

impl Graph {
    /// Shape of a source.
    pub fn src_shape(&self, s: Src) -> &[usize] {
        match s {
            Src::Input => &self.input.shape,
            Src::Node(i) => &self.nodes[i].shape,
        }
    }
}

/// Largest allowed dimension, attribute or shape entry.
pub(crate) const SIZE_MAX: i64 = 1 << 30;

/// Element count of `shape`, if it does not overflow and is at most [`MAX_ELEMS`].
pub(crate) fn checked_numel(shape: &[usize]) -> Option<usize> {
    shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .filter(|&n| n <= MAX_ELEMS)
}

/// Formats a shape as `[a, b, c]`.
pub fn fmt_shape(s: &[usize]) -> String {
    let parts: Vec<String> = s.iter().map(|d| d.to_string()).collect();
    format!("[{}]", parts.join(", "))
}

//! The validated graph of a network file (docs/model-format.md §1-2): the input, the nodes in
//! topological order with their attributes and per-sample shapes, and the size limits every
//! reader applies.

use crate::numeric::Precision;

/// Largest number of elements allowed in one node value or tensor (indices are u32).
pub(crate) const MAX_ELEMS: usize = 1 << 31;

/// How the network's input is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputKind {
    /// An analog tensor applied unchanged at every step.
    Static,
    /// Per-step integer event counts.
    Events,
    /// Per-step tensors of any value (binary spike trains or graded), one per time step.
    Sequence,
}

impl InputKind {
    pub fn as_str(self) -> &'static str {
        match self {
            InputKind::Static => "static",
            InputKind::Events => "events",
            InputKind::Sequence => "sequence",
        }
    }
}

/// Integer range of a signed 8-bit input (the default; files without `input.signed`).
pub const SIGNED_INPUT_RANGE: (i32, i32) = (-128, 127);
/// Integer range of an unsigned 8-bit input (`input.signed` false).
pub const UNSIGNED_INPUT_RANGE: (i32, i32) = (0, 255);

/// The `input` entry of the graph.
#[derive(Debug, Clone, PartialEq)]
pub struct InputSpec {
    pub shape: Vec<usize>,
    pub kind: InputKind,
    pub scale: Option<f64>,
    /// `input.signed`: whether an int-precision static or sequence input is quantised to
    /// signed 8 bits, `[-128, 127]` (true, the default), or unsigned, `[0, 255]` (false).
    pub signed: bool,
}

impl InputSpec {
    /// The integer range `[lo, hi]` of a quantised static or sequence input.
    pub fn int_range(&self) -> (i32, i32) {
        int_range(self.signed)
    }
}

/// The integer range `[lo, hi]` of a quantised input that is `signed` or not.
pub fn int_range(signed: bool) -> (i32, i32) {
    if signed {
        SIGNED_INPUT_RANGE
    } else {
        UNSIGNED_INPUT_RANGE
    }
}

/// The ops of docs/model-format.md §2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpKind {
    Linear,
    Conv2d,
    Conv1d,
    AvgPool2d,
    SumPool2d,
    AvgPool1d,
    SumPool1d,
    Flatten,
    Add,
    Scale,
    DsrIf,
    DsrLif,
    DspikeLif,
    Integrate,
    /// A one-step delay: its value at step n is its input's value at step n - 1 (zero at the
    /// first step). The only edge a cycle may pass through.
    Delay,
}

impl OpKind {
    pub fn parse(s: &str) -> Option<OpKind> {
        Some(match s {
            "linear" => OpKind::Linear,
            "conv2d" => OpKind::Conv2d,
            "conv1d" => OpKind::Conv1d,
            "avgpool2d" => OpKind::AvgPool2d,
            "sumpool2d" => OpKind::SumPool2d,
            "avgpool1d" => OpKind::AvgPool1d,
            "sumpool1d" => OpKind::SumPool1d,
            "flatten" => OpKind::Flatten,
            "add" => OpKind::Add,
            "scale" => OpKind::Scale,
            "dsr_if" => OpKind::DsrIf,
            "dsr_lif" => OpKind::DsrLif,
            "dspike_lif" => OpKind::DspikeLif,
            "integrate" => OpKind::Integrate,
            "delay" => OpKind::Delay,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            OpKind::Linear => "linear",
            OpKind::Conv2d => "conv2d",
            OpKind::Conv1d => "conv1d",
            OpKind::AvgPool2d => "avgpool2d",
            OpKind::SumPool2d => "sumpool2d",
            OpKind::AvgPool1d => "avgpool1d",
            OpKind::SumPool1d => "sumpool1d",
            OpKind::Flatten => "flatten",
            OpKind::Add => "add",
            OpKind::Scale => "scale",
            OpKind::DsrIf => "dsr_if",
            OpKind::DsrLif => "dsr_lif",
            OpKind::DspikeLif => "dspike_lif",
            OpKind::Integrate => "integrate",
            OpKind::Delay => "delay",
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
        matches!(self, OpKind::Linear | OpKind::Conv2d | OpKind::Conv1d)
    }

    /// Convolutions (2-d, and 1-d run as 2-d with a height of 1).
    pub fn is_conv(self) -> bool {
        matches!(self, OpKind::Conv2d | OpKind::Conv1d)
    }

    /// Pools (2-d and 1-d).
    pub fn is_pool(self) -> bool {
        matches!(
            self,
            OpKind::AvgPool2d | OpKind::SumPool2d | OpKind::AvgPool1d | OpKind::SumPool1d
        )
    }

    /// Average pools (2-d and 1-d).
    pub fn is_avg_pool(self) -> bool {
        matches!(self, OpKind::AvgPool2d | OpKind::AvgPool1d)
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

/// The sensor `[C, H, W]` that events of an input of `shape` are binned onto: `[C, H, W]`
/// itself, `[C, 1, L]` for a 1-d input `[C, L]`, `[1, 1, F]` for `[F]`; `C` must be 1 or 2
/// (the polarity is the channel when it is 2). None for any other shape.
pub(crate) fn event_sensor(shape: &[usize]) -> Option<[usize; 3]> {
    let s = match *shape {
        [c, h, w] => [c, h, w],
        [c, l] => [c, 1, l],
        [f] => [1, 1, f],
        _ => return None,
    };
    (1..=2).contains(&s[0]).then_some(s)
}

/// A validated node.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeSpec {
    pub name: String,
    pub op: OpKind,
    pub inputs: Vec<Src>,
    /// Output shape per sample, torch layout (`[C, H, W]`, `[C, L]` or `[F]`).
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
pub(crate) fn fmt_shape(s: &[usize]) -> String {
    let parts: Vec<String> = s.iter().map(|d| d.to_string()).collect();
    format!("[{}]", parts.join(", "))
}

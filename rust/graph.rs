//! The graph JSON of a network file (docs/model-format.md §1-2): parsing, validation,
//! topological sort, shape inference, and validation of the tensors each node owns.
//!
//! Parsing is done by hand from `serde_json::Value` so that every message names the node and
//! the field that is wrong.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};

use serde_json::{Map, Value as Json};

use crate::error::{Result, SnnError};
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

// ---------------------------------------------------------------------------------------------
// JSON helpers

fn graph_err(msg: impl Into<String>) -> SnnError {
    SnnError::Graph(msg.into())
}

fn json_type(v: &Json) -> &'static str {
    match v {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(n) if n.is_i64() || n.is_u64() => "an integer",
        Json::Number(_) => "a float",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}

struct NodeCtx<'a> {
    name: &'a str,
    op: &'a str,
    obj: &'a Map<String, Json>,
}

impl NodeCtx<'_> {
    fn err(&self, msg: impl Into<String>) -> SnnError {
        SnnError::node(self.name, self.op, msg)
    }

    fn int_opt(&self, key: &str) -> Result<Option<i64>> {
        match self.obj.get(key) {
            None | Some(Json::Null) => Ok(None),
            Some(Json::Number(n)) => match n.as_i64() {
                Some(v) => Ok(Some(v)),
                None => Err(self.err(format!(
                    "attribute '{key}' must be a JSON integer in the int64 range, got {n}"
                ))),
            },
            Some(v) => Err(self.err(format!(
                "attribute '{key}' must be a JSON integer, got {}",
                json_type(v)
            ))),
        }
    }

    fn int_req(&self, key: &str) -> Result<i64> {
        self.int_opt(key)?
            .ok_or_else(|| self.err(format!("missing integer attribute '{key}'")))
    }

    /// A required integer attribute in `[lo, hi]`.
    fn int_range(&self, key: &str, lo: i64, hi: i64) -> Result<i64> {
        let v = self.int_req(key)?;
        if v < lo || v > hi {
            return Err(self.err(format!(
                "attribute '{key}' = {v} is out of range [{lo}, {hi}]"
            )));
        }
        Ok(v)
    }

    /// A required `[a, b]` pair of integers, each in `[lo, hi]`.
    fn pair(&self, key: &str, lo: i64, hi: i64) -> Result<[usize; 2]> {
        let v = self
            .obj
            .get(key)
            .ok_or_else(|| self.err(format!("missing attribute '{key}' ([h, w])")))?;
        let arr = v.as_array().ok_or_else(|| {
            self.err(format!(
                "attribute '{key}' must be an array [h, w] of integers, got {}",
                json_type(v)
            ))
        })?;
        if arr.len() != 2 {
            return Err(self.err(format!(
                "attribute '{key}' must have 2 elements [h, w], got {}",
                arr.len()
            )));
        }
        let mut out = [0usize; 2];
        for (i, e) in arr.iter().enumerate() {
            let x = e
                .as_i64()
                .filter(|_| e.is_i64() || e.is_u64())
                .ok_or_else(|| {
                    self.err(format!(
                        "attribute '{key}'[{i}] must be a JSON integer, got {}",
                        json_type(e)
                    ))
                })?;
            if x < lo || x > hi {
                return Err(self.err(format!(
                    "attribute '{key}'[{i}] = {x} is out of range [{lo}, {hi}]"
                )));
            }
            out[i] = x as usize;
        }
        Ok(out)
    }
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-')
}

fn checked_numel(shape: &[usize]) -> Option<usize> {
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

const SIZE_MAX: i64 = 1 << 30;

// ---------------------------------------------------------------------------------------------
// Parsing

struct RawNode {
    name: String,
    op: OpKind,
    op_str: String,
    inputs: Vec<String>,
    obj: Map<String, Json>,
}

/// Parses and validates the graph JSON (structure, names, topological order, attributes and
/// shapes). Tensors are checked separately by [`take_params`].
pub fn parse_graph(text: &str) -> Result<Graph> {
    let root: Json = serde_json::from_str(text)
        .map_err(|e| graph_err(format!("graph JSON does not parse: {e}")))?;
    let root = root
        .as_object()
        .ok_or_else(|| graph_err("the graph JSON must be an object"))?;

    match root.get("version") {
        Some(Json::Number(n)) if n.as_i64() == Some(1) => {}
        Some(v) => {
            return Err(graph_err(format!(
                "unsupported 'version' {v} (this engine reads version 1)"
            )))
        }
        None => return Err(graph_err("missing 'version'")),
    }

    let precision = match root.get("precision").and_then(Json::as_str) {
        Some("float32") => Precision::Float32,
        Some("int") => Precision::Int,
        Some(p) => {
            return Err(graph_err(format!(
                "'precision' must be \"float32\" or \"int\", got \"{p}\""
            )))
        }
        None => return Err(graph_err("missing string 'precision'")),
    };

    let input = parse_input(root.get("input"))?;

    let nodes_json = root
        .get("nodes")
        .and_then(Json::as_array)
        .ok_or_else(|| graph_err("missing array 'nodes'"))?;
    if nodes_json.is_empty() {
        return Err(graph_err("'nodes' is empty"));
    }

    // Names, ops, inputs.
    let mut raw: Vec<RawNode> = Vec::with_capacity(nodes_json.len());
    let mut index: HashMap<String, usize> = HashMap::new();
    for (i, nj) in nodes_json.iter().enumerate() {
        let obj = nj
            .as_object()
            .ok_or_else(|| graph_err(format!("nodes[{i}] must be an object")))?;
        let name = obj
            .get("name")
            .and_then(Json::as_str)
            .ok_or_else(|| graph_err(format!("nodes[{i}] has no string 'name'")))?
            .to_string();
        if name == "input" {
            return Err(graph_err(format!(
                "nodes[{i}]: the name 'input' is reserved for the network input"
            )));
        }
        if !valid_name(&name) {
            return Err(graph_err(format!(
                "nodes[{i}]: invalid name {name:?} (names match [A-Za-z0-9_.-]+)"
            )));
        }
        if index.insert(name.clone(), i).is_some() {
            return Err(graph_err(format!("duplicate node name '{name}'")));
        }
        let op_str = obj
            .get("op")
            .and_then(Json::as_str)
            .ok_or_else(|| graph_err(format!("node '{name}' has no string 'op'")))?
            .to_string();
        let op = OpKind::parse(&op_str)
            .ok_or_else(|| SnnError::node(&name, &op_str, format!("unknown op '{op_str}'")))?;
        let inputs_json = obj
            .get("inputs")
            .and_then(Json::as_array)
            .ok_or_else(|| SnnError::node(&name, &op_str, "missing array 'inputs'"))?;
        let mut inputs = Vec::with_capacity(inputs_json.len());
        for (k, v) in inputs_json.iter().enumerate() {
            let s = v.as_str().ok_or_else(|| {
                SnnError::node(&name, &op_str, format!("inputs[{k}] must be a string"))
            })?;
            inputs.push(s.to_string());
        }
        raw.push(RawNode {
            name,
            op,
            op_str,
            inputs,
            obj: obj.clone(),
        });
    }

    // Input counts and references.
    let mut deps: Vec<Vec<usize>> = Vec::with_capacity(raw.len());
    for r in &raw {
        let n = r.inputs.len();
        if r.op == OpKind::Add {
            if n < 2 {
                return Err(SnnError::node(
                    &r.name,
                    &r.op_str,
                    format!("add needs at least 2 inputs, got {n}"),
                ));
            }
        } else if n != 1 {
            return Err(SnnError::node(
                &r.name,
                &r.op_str,
                format!("needs exactly 1 input, got {n}"),
            ));
        }
        let mut d = Vec::new();
        for s in &r.inputs {
            if s == "input" {
                continue;
            }
            match index.get(s) {
                Some(&j) => d.push(j),
                None => {
                    return Err(SnnError::node(
                        &r.name,
                        &r.op_str,
                        format!("unknown input '{s}'"),
                    ))
                }
            }
        }
        deps.push(d);
    }

    let order = topo_sort(&raw, &deps)?;
    let mut pos = vec![0usize; raw.len()];
    for (p, &i) in order.iter().enumerate() {
        pos[i] = p;
    }

    let output_name = root
        .get("output")
        .and_then(Json::as_str)
        .ok_or_else(|| graph_err("missing string 'output'"))?;
    let output_orig = *index
        .get(output_name)
        .ok_or_else(|| graph_err(format!("'output' names an unknown node '{output_name}'")))?;

    // Shapes and attributes, in topological order.
    let mut nodes: Vec<NodeSpec> = Vec::with_capacity(raw.len());
    for &i in &order {
        let r = &raw[i];
        let inputs: Vec<Src> = r
            .inputs
            .iter()
            .map(|s| {
                if s == "input" {
                    Src::Input
                } else {
                    Src::Node(pos[index[s]])
                }
            })
            .collect();
        let in_shapes: Vec<&[usize]> = inputs
            .iter()
            .map(|&s| match s {
                Src::Input => input.shape.as_slice(),
                Src::Node(j) => nodes[j].shape.as_slice(),
            })
            .collect();
        let ctx = NodeCtx {
            name: &r.name,
            op: &r.op_str,
            obj: &r.obj,
        };
        let (shape, attrs) = infer_node(&ctx, r.op, precision, &in_shapes)?;
        if checked_numel(&shape).is_none() {
            return Err(ctx.err(format!("output shape {} is too large", fmt_shape(&shape))));
        }
        if shape.contains(&0) {
            return Err(ctx.err(format!("output shape {} is empty", fmt_shape(&shape))));
        }
        nodes.push(NodeSpec {
            name: r.name.clone(),
            op: r.op,
            inputs,
            shape,
            attrs,
        });
    }

    let output = pos[output_orig];
    let out_op = nodes[output].op;
    if !out_op.has_state() {
        return Err(graph_err(format!(
            "the output node '{output_name}' is a {} node; it must be a neuron \
             (dsr_if, dsr_lif, dspike_lif) or integrate",
            out_op.as_str()
        )));
    }

    Ok(Graph {
        precision,
        input,
        nodes,
        output,
    })
}

fn parse_input(v: Option<&Json>) -> Result<InputSpec> {
    let obj = v
        .and_then(Json::as_object)
        .ok_or_else(|| graph_err("missing object 'input'"))?;
    let shape_json = obj
        .get("shape")
        .and_then(Json::as_array)
        .ok_or_else(|| graph_err("input: missing array 'shape'"))?;
    let mut shape = Vec::with_capacity(shape_json.len());
    for (i, d) in shape_json.iter().enumerate() {
        let x = d
            .as_i64()
            .filter(|_| d.is_i64() || d.is_u64())
            .ok_or_else(|| graph_err(format!("input.shape[{i}] must be a JSON integer")))?;
        if !(1..=SIZE_MAX).contains(&x) {
            return Err(graph_err(format!(
                "input.shape[{i}] = {x} must be a positive integer"
            )));
        }
        shape.push(x as usize);
    }
    if shape.len() != 1 && shape.len() != 3 {
        return Err(graph_err(format!(
            "input.shape {} must be [C, H, W] or [F]",
            fmt_shape(&shape)
        )));
    }
    if checked_numel(&shape).is_none() {
        return Err(graph_err("input.shape is too large"));
    }
    let kind = match obj.get("kind").and_then(Json::as_str) {
        Some("static") => InputKind::Static,
        Some("events") => InputKind::Events,
        Some(k) => {
            return Err(graph_err(format!(
                "input.kind must be \"static\" or \"events\", got \"{k}\""
            )))
        }
        None => return Err(graph_err("input: missing string 'kind'")),
    };
    if kind == InputKind::Events && (shape.len() != 3 || !(1..=2).contains(&shape[0])) {
        return Err(graph_err(format!(
            "input.shape {} for events must be [C, H, W] with C in {{1, 2}}",
            fmt_shape(&shape)
        )));
    }
    let scale = match obj.get("scale") {
        None | Some(Json::Null) => None,
        Some(Json::Number(n)) => {
            let s = n.as_f64().unwrap_or(f64::NAN);
            if !(s.is_finite() && s > 0.0) {
                return Err(graph_err(format!(
                    "input.scale must be a finite positive number, got {n}"
                )));
            }
            Some(s)
        }
        Some(v) => {
            return Err(graph_err(format!(
                "input.scale must be a number, got {}",
                json_type(v)
            )))
        }
    };
    Ok(InputSpec { shape, kind, scale })
}

/// Kahn's algorithm; among ready nodes the one listed first in the file goes first, so the
/// order is deterministic and equals the file order when that is already topological.
fn topo_sort(raw: &[RawNode], deps: &[Vec<usize>]) -> Result<Vec<usize>> {
    let n = raw.len();
    let mut indeg = vec![0usize; n];
    let mut users: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, d) in deps.iter().enumerate() {
        for &j in d {
            indeg[i] += 1;
            users[j].push(i);
        }
    }
    let mut ready: BinaryHeap<Reverse<usize>> =
        (0..n).filter(|&i| indeg[i] == 0).map(Reverse).collect();
    let mut order = Vec::with_capacity(n);
    while let Some(Reverse(i)) = ready.pop() {
        order.push(i);
        for &u in &users[i] {
            indeg[u] -= 1;
            if indeg[u] == 0 {
                ready.push(Reverse(u));
            }
        }
    }
    if order.len() != n {
        let done: HashSet<usize> = order.iter().copied().collect();
        let mut names: Vec<&str> = (0..n)
            .filter(|i| !done.contains(i))
            .map(|i| raw[i].name.as_str())
            .collect();
        names.truncate(10);
        return Err(graph_err(format!(
            "the graph has a cycle through node(s) {}",
            names
                .iter()
                .map(|s| format!("'{s}'"))
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    Ok(order)
}

fn infer_node(
    ctx: &NodeCtx<'_>,
    op: OpKind,
    precision: Precision,
    in_shapes: &[&[usize]],
) -> Result<(Vec<usize>, Attrs)> {
    let mut a = Attrs::default();
    let x = in_shapes[0];
    let int = precision == Precision::Int;
    let need_rank3 = |what: &str| -> Result<(usize, usize, usize)> {
        if x.len() != 3 {
            return Err(ctx.err(format!(
                "{what} needs a [C, H, W] input, got shape {}",
                fmt_shape(x)
            )));
        }
        Ok((x[0], x[1], x[2]))
    };
    let shape = match op {
        OpKind::Linear => {
            a.in_features = ctx.int_range("in_features", 1, SIZE_MAX)? as usize;
            a.out_features = ctx.int_range("out_features", 1, SIZE_MAX)? as usize;
            if int {
                a.weight_bits = weight_bits(ctx)?;
            }
            if x.len() != 1 || x[0] != a.in_features {
                return Err(ctx.err(format!(
                    "input shape {} does not match in_features = {} (linear needs a [F] input)",
                    fmt_shape(x),
                    a.in_features
                )));
            }
            if a.in_features
                .checked_mul(a.out_features)
                .is_none_or(|n| n > MAX_ELEMS)
            {
                return Err(ctx.err("weight matrix is too large"));
            }
            vec![a.out_features]
        }
        OpKind::Conv2d => {
            a.in_channels = ctx.int_range("in_channels", 1, SIZE_MAX)? as usize;
            a.out_channels = ctx.int_range("out_channels", 1, SIZE_MAX)? as usize;
            a.kernel = ctx.pair("kernel", 1, SIZE_MAX)?;
            a.stride = ctx.pair("stride", 1, SIZE_MAX)?;
            a.padding = ctx.pair("padding", 0, SIZE_MAX)?;
            if int {
                a.weight_bits = weight_bits(ctx)?;
            }
            let (c, h, w) = need_rank3("conv2d")?;
            if c != a.in_channels {
                return Err(ctx.err(format!(
                    "input shape {} has {c} channels, in_channels = {}",
                    fmt_shape(x),
                    a.in_channels
                )));
            }
            let hp = h + 2 * a.padding[0];
            let wp = w + 2 * a.padding[1];
            if hp < a.kernel[0] || wp < a.kernel[1] {
                return Err(ctx.err(format!(
                    "kernel {} is larger than the padded input {}x{}",
                    fmt_shape(&a.kernel),
                    hp,
                    wp
                )));
            }
            let wn = [a.out_channels, a.in_channels, a.kernel[0], a.kernel[1]];
            if checked_numel(&wn).is_none() {
                return Err(ctx.err("weight tensor is too large"));
            }
            vec![
                a.out_channels,
                (hp - a.kernel[0]) / a.stride[0] + 1,
                (wp - a.kernel[1]) / a.stride[1] + 1,
            ]
        }
        OpKind::AvgPool2d | OpKind::SumPool2d => {
            a.kernel = ctx.pair("kernel", 1, SIZE_MAX)?;
            a.stride = ctx.pair("stride", 1, SIZE_MAX)?;
            if int && op == OpKind::AvgPool2d {
                a.m = ctx.int_range("m", i32::MIN as i64, i32::MAX as i64)? as i32;
                a.f = ctx.int_range("f", 1, 31)? as u32;
            }
            let (c, h, w) = need_rank3(op.as_str())?;
            if h < a.kernel[0] || w < a.kernel[1] {
                return Err(ctx.err(format!(
                    "kernel {} is larger than the input {}x{}",
                    fmt_shape(&a.kernel),
                    h,
                    w
                )));
            }
            vec![
                c,
                (h - a.kernel[0]) / a.stride[0] + 1,
                (w - a.kernel[1]) / a.stride[1] + 1,
            ]
        }
        OpKind::Flatten => {
            if x.len() != 3 && x.len() != 1 {
                return Err(ctx.err(format!(
                    "flatten needs a [C, H, W] input, got shape {}",
                    fmt_shape(x)
                )));
            }
            vec![x.iter().product()]
        }
        OpKind::Add => {
            for (k, s) in in_shapes.iter().enumerate().skip(1) {
                if *s != x {
                    return Err(ctx.err(format!(
                        "input {k} has shape {}, input 0 has shape {} (add needs identical shapes)",
                        fmt_shape(s),
                        fmt_shape(x)
                    )));
                }
            }
            x.to_vec()
        }
        OpKind::Scale => {
            if int {
                a.f = ctx.int_range("f", 1, 31)? as u32;
            }
            x.to_vec()
        }
        OpKind::DsrLif | OpKind::DspikeLif => {
            if int {
                a.f = ctx.int_range("f", 1, 31)? as u32;
            }
            x.to_vec()
        }
        OpKind::Integrate => {
            // Optional leak: int precision gives it as `leak_m` with this `f` (required with
            // `leak_m`, checked with the tensors in `take_params`).
            if int {
                if let Some(f) = ctx.int_opt("f")? {
                    if !(1..=31).contains(&f) {
                        return Err(ctx.err(format!("attribute 'f' = {f} is out of range [1, 31]")));
                    }
                    a.f = f as u32;
                }
            }
            x.to_vec()
        }
        OpKind::DsrIf => x.to_vec(),
    };
    Ok((shape, a))
}

fn weight_bits(ctx: &NodeCtx<'_>) -> Result<u32> {
    let b = ctx.int_req("weight_bits")?;
    match b {
        4 | 8 | 16 => Ok(b as u32),
        _ => Err(ctx.err(format!("weight_bits must be 4, 8 or 16, got {b}"))),
    }
}

// ---------------------------------------------------------------------------------------------
// Tensors

/// Element data of a tensor read from the file.
#[derive(Debug, Clone, PartialEq)]
pub enum TensorData {
    F32(Vec<f32>),
    I8(Vec<i8>),
    I16(Vec<i16>),
    I32(Vec<i32>),
    /// A dtype the format does not use (its safetensors name).
    Other(String),
}

impl TensorData {
    pub fn dtype_name(&self) -> &str {
        match self {
            TensorData::F32(_) => "F32",
            TensorData::I8(_) => "I8",
            TensorData::I16(_) => "I16",
            TensorData::I32(_) => "I32",
            TensorData::Other(s) => s,
        }
    }
}

/// A tensor read from the file.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    pub shape: Vec<usize>,
    pub data: TensorData,
}

/// The validated tensors of one node, by field name.
#[derive(Debug, Clone, Default)]
pub struct NodeParams {
    pub fields: Vec<(&'static str, Tensor)>,
}

impl NodeParams {
    pub fn get(&self, field: &str) -> Option<&Tensor> {
        self.fields
            .iter()
            .find(|(f, _)| *f == field)
            .map(|(_, t)| t)
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Weight,
    Bias,
    /// `[C]` or `[1]`.
    Channel,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Check {
    None,
    /// > 0 (float) / >= 1 (int).
    Positive,
    /// >= 0.
    NonNegative,
}

struct FieldSpec {
    name: &'static str,
    required: bool,
    role: Role,
    check: Check,
}

const fn fs(name: &'static str, required: bool, role: Role, check: Check) -> FieldSpec {
    FieldSpec {
        name,
        required,
        role,
        check,
    }
}

fn field_specs(op: OpKind, precision: Precision) -> Vec<FieldSpec> {
    let int = precision == Precision::Int;
    match op {
        OpKind::Linear | OpKind::Conv2d => vec![
            fs("weight", true, Role::Weight, Check::None),
            fs("bias", false, Role::Bias, Check::None),
        ],
        OpKind::AvgPool2d | OpKind::SumPool2d | OpKind::Flatten | OpKind::Add => vec![],
        OpKind::Integrate => vec![fs(
            if int { "leak_m" } else { "leak" },
            false,
            Role::Channel,
            if int { Check::NonNegative } else { Check::None },
        )],
        OpKind::Scale => vec![
            fs(
                if int { "m" } else { "scale" },
                true,
                Role::Channel,
                Check::None,
            ),
            fs("shift", false, Role::Channel, Check::None),
        ],
        OpKind::DsrIf => vec![
            fs("theta", true, Role::Channel, Check::Positive),
            fs("fire", true, Role::Channel, Check::Positive),
        ],
        OpKind::DsrLif => vec![
            fs("theta", true, Role::Channel, Check::Positive),
            fs("fire", true, Role::Channel, Check::Positive),
            fs(
                if int { "leak_m" } else { "leak" },
                true,
                Role::Channel,
                if int { Check::NonNegative } else { Check::None },
            ),
            fs(
                if int { "gain_m" } else { "gain" },
                true,
                Role::Channel,
                Check::None,
            ),
        ],
        OpKind::DspikeLif => vec![
            fs("fire", true, Role::Channel, Check::None),
            fs(
                if int { "leak_m" } else { "leak" },
                true,
                Role::Channel,
                if int { Check::NonNegative } else { Check::None },
            ),
        ],
    }
}

/// Takes the tensors each node owns out of `tensors` (named `"{node}.{field}"`), checks dtype,
/// shape and values, and returns them per node (topological order). Tensors that no node owns
/// are an error (a misspelt field would otherwise be silently ignored).
pub fn take_params(graph: &Graph, mut tensors: HashMap<String, Tensor>) -> Result<Vec<NodeParams>> {
    let mut out = Vec::with_capacity(graph.nodes.len());
    for node in &graph.nodes {
        let mut params = NodeParams::default();
        for spec in field_specs(node.op, graph.precision) {
            let key = format!("{}.{}", node.name, spec.name);
            match tensors.remove(&key) {
                None if spec.required => {
                    return Err(SnnError::tensor(&node.name, spec.name, "missing"))
                }
                None => {}
                Some(t) => {
                    check_tensor(graph, node, &spec, &t)?;
                    params.fields.push((spec.name, t));
                }
            }
        }
        if node.op == OpKind::Integrate
            && graph.precision == Precision::Int
            && params.get("leak_m").is_some()
            && node.attrs.f == 0
        {
            return Err(SnnError::node(
                &node.name,
                node.op.as_str(),
                "a leaky integrate (tensor 'leak_m') needs the integer attribute 'f' in [1, 31]",
            ));
        }
        out.push(params);
    }
    if !tensors.is_empty() {
        let mut names: Vec<&String> = tensors.keys().collect();
        names.sort();
        return Err(SnnError::File(format!(
            "tensor(s) not owned by any node field: {}",
            names
                .iter()
                .take(10)
                .map(|s| format!("'{s}'"))
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    Ok(out)
}

fn check_tensor(graph: &Graph, node: &NodeSpec, spec: &FieldSpec, t: &Tensor) -> Result<()> {
    let terr = |msg: String| SnnError::tensor(&node.name, spec.name, msg);
    let a = &node.attrs;
    let int = graph.precision == Precision::Int;

    // dtype
    let want = if !int {
        "F32"
    } else if spec.role == Role::Weight {
        if a.weight_bits == 16 {
            "I16"
        } else {
            "I8"
        }
    } else {
        "I32"
    };
    if t.data.dtype_name() != want {
        let why = if spec.role == Role::Weight && int {
            format!(" (weight_bits = {})", a.weight_bits)
        } else {
            String::new()
        };
        return Err(terr(format!(
            "dtype {} where {} precision needs {want}{why}",
            t.data.dtype_name(),
            graph.precision.as_str()
        )));
    }

    // shape
    let c = node.shape[0];
    let shape_ok = match spec.role {
        Role::Weight => {
            let want: Vec<usize> = if node.op == OpKind::Linear {
                vec![a.out_features, a.in_features]
            } else {
                vec![a.out_channels, a.in_channels, a.kernel[0], a.kernel[1]]
            };
            if t.shape != want {
                return Err(terr(format!(
                    "shape {} where {} is expected",
                    fmt_shape(&t.shape),
                    fmt_shape(&want)
                )));
            }
            true
        }
        Role::Bias => t.shape == [c],
        Role::Channel => t.shape == [c] || t.shape == [1],
    };
    if !shape_ok {
        let want = if spec.role == Role::Bias {
            format!("[{c}]")
        } else {
            format!("[{c}] or [1]")
        };
        return Err(terr(format!(
            "shape {} where {want} is expected",
            fmt_shape(&t.shape)
        )));
    }

    // values
    match &t.data {
        TensorData::F32(v) => {
            if let Some((i, x)) = v.iter().enumerate().find(|(_, x)| !x.is_finite()) {
                return Err(terr(format!("element {i} is not finite ({x})")));
            }
            if spec.check == Check::Positive {
                if let Some((i, x)) = v.iter().enumerate().find(|(_, &x)| x <= 0.0) {
                    return Err(terr(format!("element {i} = {x} must be > 0")));
                }
            }
            if spec.check == Check::NonNegative {
                if let Some((i, x)) = v.iter().enumerate().find(|(_, &x)| x < 0.0) {
                    return Err(terr(format!("element {i} = {x} must be >= 0")));
                }
            }
        }
        TensorData::I8(v) => {
            if a.weight_bits == 4 {
                if let Some((i, x)) = v.iter().enumerate().find(|(_, &x)| !(-8..=7).contains(&x)) {
                    return Err(terr(format!(
                        "element {i} = {x} is outside the int4 range [-8, 7]"
                    )));
                }
            }
        }
        TensorData::I16(_) => {}
        TensorData::I32(v) => {
            if spec.check == Check::Positive {
                if let Some((i, x)) = v.iter().enumerate().find(|(_, &x)| x < 1) {
                    return Err(terr(format!("element {i} = {x} must be >= 1")));
                }
            }
            if spec.check == Check::NonNegative {
                if let Some((i, x)) = v.iter().enumerate().find(|(_, &x)| x < 0) {
                    return Err(terr(format!("element {i} = {x} must be >= 0")));
                }
            }
        }
        TensorData::Other(_) => return Err(terr("unsupported dtype".into())),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn base() -> Json {
        json!({
            "version": 1,
            "precision": "float32",
            "input": {"shape": [2, 6, 6], "kind": "static"},
            "nodes": [
                {"name": "c1", "op": "conv2d", "inputs": ["input"], "in_channels": 2,
                 "out_channels": 3, "kernel": [3, 3], "stride": [1, 1], "padding": [1, 1]},
                {"name": "n1", "op": "dsr_if", "inputs": ["c1"]},
                {"name": "p1", "op": "sumpool2d", "inputs": ["n1"], "kernel": [2, 2], "stride": [2, 2]},
                {"name": "f", "op": "flatten", "inputs": ["p1"]},
                {"name": "fc", "op": "linear", "inputs": ["f"], "in_features": 27, "out_features": 4},
                {"name": "out", "op": "integrate", "inputs": ["fc"]}
            ],
            "output": "out"
        })
    }

    fn err_of(g: &Json) -> String {
        parse_graph(&g.to_string()).unwrap_err().to_string()
    }

    #[test]
    fn valid_graph_shapes_and_order() {
        let g = parse_graph(&base().to_string()).unwrap();
        let shapes: Vec<Vec<usize>> = g.nodes.iter().map(|n| n.shape.clone()).collect();
        assert_eq!(
            shapes,
            vec![
                vec![3, 6, 6],
                vec![3, 6, 6],
                vec![3, 3, 3],
                vec![27],
                vec![4],
                vec![4]
            ]
        );
        assert_eq!(g.output, 5);
    }

    #[test]
    fn topological_sort_of_shuffled_nodes() {
        let mut j = base();
        let nodes = j["nodes"].as_array_mut().unwrap();
        nodes.reverse();
        let g = parse_graph(&j.to_string()).unwrap();
        let names: Vec<&str> = g.nodes.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, vec!["c1", "n1", "p1", "f", "fc", "out"]);
        assert_eq!(g.nodes[g.output].name, "out");
        // inputs are resolved to the sorted positions
        assert_eq!(g.nodes[1].inputs, vec![Src::Node(0)]);
        assert_eq!(g.nodes[0].inputs, vec![Src::Input]);
    }

    #[test]
    fn structural_errors() {
        let mut j = base();
        j["nodes"][1]["inputs"] = json!(["nope"]);
        assert!(err_of(&j).contains("unknown input 'nope'"));

        let mut j = base();
        j["nodes"][2]["name"] = json!("n1");
        assert!(err_of(&j).contains("duplicate node name 'n1'"));

        let mut j = base();
        j["nodes"][0]["name"] = json!("input");
        assert!(err_of(&j).contains("reserved"));

        let mut j = base();
        j["nodes"][0]["name"] = json!("bad name!");
        assert!(err_of(&j).contains("invalid name"));

        let mut j = base();
        j["nodes"][0]["inputs"] = json!(["out"]);
        let e = err_of(&j);
        assert!(e.contains("cycle"), "{e}");

        let mut j = base();
        j["nodes"][1]["op"] = json!("relu");
        assert!(err_of(&j).contains("unknown op 'relu'"));

        let mut j = base();
        j["output"] = json!("fc");
        let e = err_of(&j);
        assert!(
            e.contains("output node 'fc'") && e.contains("linear"),
            "{e}"
        );

        let mut j = base();
        j["output"] = json!("zzz");
        assert!(err_of(&j).contains("unknown node 'zzz'"));

        let mut j = base();
        j["version"] = json!(2);
        assert!(err_of(&j).contains("version"));

        let mut j = base();
        j["precision"] = json!("int8");
        assert!(err_of(&j).contains("precision"));

        assert!(parse_graph("{not json")
            .unwrap_err()
            .to_string()
            .contains("does not parse"));
        assert!(parse_graph("[]").is_err());

        let mut j = base();
        j["nodes"][1]["inputs"] = json!(["c1", "c1"]);
        assert!(err_of(&j).contains("exactly 1 input"));
    }

    #[test]
    fn attribute_and_shape_errors() {
        let mut j = base();
        j["nodes"][4]["in_features"] = json!(26);
        let e = err_of(&j);
        assert!(e.contains("'fc'") && e.contains("in_features = 26"), "{e}");

        let mut j = base();
        j["nodes"][0]["kernel"] = json!([3.0, 3]);
        let e = err_of(&j);
        assert!(e.contains("'c1'") && e.contains("kernel"), "{e}");

        let mut j = base();
        j["nodes"][0]["stride"] = json!([0, 1]);
        assert!(err_of(&j).contains("out of range"));

        let mut j = base();
        j["nodes"][0].as_object_mut().unwrap().remove("padding");
        assert!(err_of(&j).contains("missing attribute 'padding'"));

        let mut j = base();
        j["nodes"][0]["in_channels"] = json!(3);
        assert!(err_of(&j).contains("in_channels"));

        let mut j = base();
        j["nodes"][2]["kernel"] = json!([7, 7]);
        assert!(err_of(&j).contains("larger than the input"));

        // linear on a [C,H,W] input
        let mut j = base();
        j["nodes"][4]["inputs"] = json!(["p1"]);
        assert!(err_of(&j).contains("linear needs a [F] input"));

        // int precision needs weight_bits and f
        let mut j = base();
        j["precision"] = json!("int");
        assert!(err_of(&j).contains("weight_bits"));
        j["nodes"][0]["weight_bits"] = json!(5);
        assert!(err_of(&j).contains("4, 8 or 16"));

        // add of different shapes
        let mut j = base();
        j["nodes"].as_array_mut().unwrap().push(json!(
            {"name": "a", "op": "add", "inputs": ["fc", "f"]}));
        assert!(err_of(&j).contains("identical shapes"));

        // events input must be [C,H,W] with C in {1, 2}
        let mut j = base();
        j["input"] = json!({"shape": [3, 6, 6], "kind": "events"});
        assert!(err_of(&j).contains("C in {1, 2}"));
        let mut j = base();
        j["input"]["scale"] = json!(-1.0);
        assert!(err_of(&j).contains("scale"));
    }

    fn tensor_f32(shape: &[usize], v: f32) -> Tensor {
        Tensor {
            shape: shape.to_vec(),
            data: TensorData::F32(vec![v; shape.iter().product()]),
        }
    }

    fn good_tensors() -> HashMap<String, Tensor> {
        let mut t = HashMap::new();
        t.insert("c1.weight".into(), tensor_f32(&[3, 2, 3, 3], 0.1));
        t.insert("n1.theta".into(), tensor_f32(&[3], 1.0));
        t.insert("n1.fire".into(), tensor_f32(&[1], 0.5));
        t.insert("fc.weight".into(), tensor_f32(&[4, 27], 0.1));
        t.insert("fc.bias".into(), tensor_f32(&[4], 0.0));
        t
    }

    #[test]
    fn tensor_validation() {
        let g = parse_graph(&base().to_string()).unwrap();
        let p = take_params(&g, good_tensors()).unwrap();
        assert!(p[0].get("weight").is_some() && p[0].get("bias").is_none());

        let check = |edit: &dyn Fn(&mut HashMap<String, Tensor>), want: &str| {
            let mut t = good_tensors();
            edit(&mut t);
            let e = take_params(&g, t).unwrap_err().to_string();
            assert!(e.contains(want), "expected '{want}' in: {e}");
        };
        check(
            &|t| {
                t.remove("n1.theta");
            },
            "'n1.theta': missing",
        );
        check(
            &|t| {
                t.insert("fc.weight".into(), tensor_f32(&[27, 4], 0.1));
            },
            "'fc.weight': shape [27, 4] where [4, 27]",
        );
        check(
            &|t| {
                t.insert("fc.bias".into(), tensor_f32(&[1], 0.1));
            },
            "'fc.bias': shape [1] where [4]",
        );
        check(
            &|t| {
                t.insert("n1.fire".into(), tensor_f32(&[2], 0.5));
            },
            "[3] or [1]",
        );
        check(
            &|t| {
                t.insert("n1.theta".into(), tensor_f32(&[3], 0.0));
            },
            "must be > 0",
        );
        check(
            &|t| {
                t.insert("n1.fire".into(), tensor_f32(&[1], f32::NAN));
            },
            "not finite",
        );
        check(
            &|t| {
                t.insert("fc.weight".into(), tensor_f32(&[4, 27], f32::INFINITY));
            },
            "not finite",
        );
        check(
            &|t| {
                t.insert(
                    "n1.theta".into(),
                    Tensor {
                        shape: vec![3],
                        data: TensorData::I32(vec![1, 1, 1]),
                    },
                );
            },
            "dtype I32 where float32 precision needs F32",
        );
        check(
            &|t| {
                t.insert("fc.wieght".into(), tensor_f32(&[4, 27], 0.1));
            },
            "'fc.wieght'",
        );
    }

    #[test]
    fn int_tensor_validation() {
        let mut j = base();
        j["precision"] = json!("int");
        j["nodes"][0]["weight_bits"] = json!(4);
        j["nodes"][4]["weight_bits"] = json!(16);
        let g = parse_graph(&j.to_string()).unwrap();
        let good = || {
            let mut t = HashMap::new();
            t.insert(
                "c1.weight".into(),
                Tensor {
                    shape: vec![3, 2, 3, 3],
                    data: TensorData::I8(vec![-8; 54]),
                },
            );
            t.insert(
                "n1.theta".into(),
                Tensor {
                    shape: vec![1],
                    data: TensorData::I32(vec![6]),
                },
            );
            t.insert(
                "n1.fire".into(),
                Tensor {
                    shape: vec![1],
                    data: TensorData::I32(vec![3]),
                },
            );
            t.insert(
                "fc.weight".into(),
                Tensor {
                    shape: vec![4, 27],
                    data: TensorData::I16(vec![300; 108]),
                },
            );
            t
        };
        assert!(take_params(&g, good()).is_ok());
        let mut t = good();
        t.insert(
            "c1.weight".into(),
            Tensor {
                shape: vec![3, 2, 3, 3],
                data: TensorData::I8(vec![8; 54]),
            },
        );
        assert!(take_params(&g, t)
            .unwrap_err()
            .to_string()
            .contains("int4 range"));
        let mut t = good();
        t.insert(
            "fc.weight".into(),
            Tensor {
                shape: vec![4, 27],
                data: TensorData::I8(vec![1; 108]),
            },
        );
        let e = take_params(&g, t).unwrap_err().to_string();
        assert!(e.contains("needs I16 (weight_bits = 16)"), "{e}");
        let mut t = good();
        t.insert(
            "n1.fire".into(),
            Tensor {
                shape: vec![1],
                data: TensorData::I32(vec![0]),
            },
        );
        assert!(take_params(&g, t).unwrap_err().to_string().contains(">= 1"));
        let mut t = good();
        t.insert(
            "n1.fire".into(),
            Tensor {
                shape: vec![1],
                data: TensorData::Other("F64".into()),
            },
        );
        assert!(take_params(&g, t)
            .unwrap_err()
            .to_string()
            .contains("dtype F64"));
    }
}

//! Parsing and validation of the graph JSON: structure, names, references, topological
//! order; attributes and shapes are inferred per node by [`super::shapes`].
//!
//! Parsing is done by hand from `serde_json::Value` so that every message names the node and
//! the field that is wrong.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};

use serde_json::{Map, Value as Json};

use super::graph::{
    checked_numel, event_sensor, fmt_shape, Graph, InputKind, InputSpec, NodeSpec, OpKind, Src,
    SIZE_MAX,
};
use super::json::{graph_err, json_type, NodeCtx};
use super::shapes::infer_node;
use crate::error::{Result, SnnError};
use crate::numeric::Precision;

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-')
}

struct RawNode {
    name: String,
    op: OpKind,
    op_str: String,
    inputs: Vec<String>,
    obj: Map<String, Json>,
}

/// Parses and validates the graph JSON (structure, names, topological order, attributes and
/// shapes). Tensors are checked separately by [`take_params`].
pub(crate) fn parse_graph(text: &str) -> Result<Graph> {
    let root: Json = serde_json::from_str(text).map_err(|e| {
        graph_err(format!(
            "graph JSON does not parse (metadata 'snnsim.graph' is not valid JSON): {e}"
        ))
    })?;
    let root = root
        .as_object()
        .ok_or_else(|| graph_err("the graph JSON must be an object"))?;
    check_version(root)?;
    let precision = parse_precision(root)?;
    let input = parse_input(root.get("input"))?;

    let nodes_json = root
        .get("nodes")
        .and_then(Json::as_array)
        .ok_or_else(|| graph_err("missing array 'nodes'"))?;
    if nodes_json.is_empty() {
        return Err(graph_err("'nodes' is empty"));
    }
    let mut raw: Vec<RawNode> = Vec::with_capacity(nodes_json.len());
    let mut index: HashMap<String, usize> = HashMap::new();
    for (i, nj) in nodes_json.iter().enumerate() {
        raw.push(read_node(i, nj, &mut index)?);
    }
    let deps = raw
        .iter()
        .map(|r| node_deps(r, &index))
        .collect::<Result<Vec<_>>>()?;

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

    let nodes = infer_nodes(&raw, &order, &pos, &index, &input, precision)?;
    check_delays(&nodes, &input)?;

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

fn check_version(root: &Map<String, Json>) -> Result<()> {
    match root.get("version") {
        Some(Json::Number(n)) if n.as_i64() == Some(1) => Ok(()),
        Some(v) => Err(graph_err(format!(
            "unsupported 'version' {v} (this engine reads version 1)"
        ))),
        None => Err(graph_err("missing 'version'")),
    }
}

fn parse_precision(root: &Map<String, Json>) -> Result<Precision> {
    match root.get("precision").and_then(Json::as_str) {
        Some("float32") => Ok(Precision::Float32),
        Some("int") => Ok(Precision::Int),
        Some(p) => Err(graph_err(format!(
            "'precision' must be \"float32\" or \"int\", got \"{p}\""
        ))),
        None => Err(graph_err("missing string 'precision'")),
    }
}

/// Node `i` of the file: its name (valid, not yet in `index`, then added), op and inputs.
fn read_node(i: usize, nj: &Json, index: &mut HashMap<String, usize>) -> Result<RawNode> {
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
            "nodes[{i}]: invalid name 'input' (reserved for the network input)"
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
    Ok(RawNode {
        name,
        op,
        op_str,
        inputs,
        obj: obj.clone(),
    })
}

/// The nodes (file indices) `r` depends on within a step, after checking its input count and
/// that every input it names exists.
fn node_deps(r: &RawNode, index: &HashMap<String, usize>) -> Result<Vec<usize>> {
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
            // a delay reads the previous step's value: not an edge of this step's order
            Some(_) if r.op == OpKind::Delay => {}
            Some(&j) => d.push(j),
            None => {
                return Err(SnnError::node(
                    &r.name,
                    &r.op_str,
                    format!("field 'inputs' names unknown input '{s}'"),
                ))
            }
        }
    }
    Ok(d)
}

/// The nodes in topological order (`order`; `pos`: file index -> position) with their
/// attributes and shapes inferred by [`infer_node`].
fn infer_nodes(
    raw: &[RawNode],
    order: &[usize],
    pos: &[usize],
    index: &HashMap<String, usize>,
    input: &InputSpec,
    precision: Precision,
) -> Result<Vec<NodeSpec>> {
    let mut nodes: Vec<NodeSpec> = Vec::with_capacity(raw.len());
    for &i in order {
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
                // a delay's source may come later in the order; its declared shape is
                // checked against the source's in `check_delays`
                Src::Node(j) if j >= nodes.len() => &[],
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
    Ok(nodes)
}

/// A delay does not read another delay (through flattens) and declares its source's shape.
fn check_delays(nodes: &[NodeSpec], input: &InputSpec) -> Result<()> {
    for n in nodes.iter().filter(|n| n.op == OpKind::Delay) {
        let src = match n.inputs[0] {
            Src::Input => &input.shape,
            Src::Node(j) => &nodes[j].shape,
        };
        // the source, through flattens (which share their input's value)
        let mut through = n.inputs[0];
        while let Src::Node(j) = through {
            match nodes[j].op {
                OpKind::Flatten => through = nodes[j].inputs[0],
                OpKind::Delay => {
                    return Err(SnnError::node(
                        &n.name,
                        "delay",
                        format!(
                            "its input '{}' is a delay (or a flatten of one); delays do not \
                             chain, a delay of several steps is not supported",
                            nodes[j].name
                        ),
                    ))
                }
                _ => break,
            }
        }
        if *src != n.shape {
            return Err(SnnError::node(
                &n.name,
                "delay",
                format!(
                    "attribute 'shape' {} differs from the shape {} of its input",
                    fmt_shape(&n.shape),
                    fmt_shape(src)
                ),
            ));
        }
    }
    Ok(())
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
    if !(1..=3).contains(&shape.len()) {
        return Err(graph_err(format!(
            "input.shape {} must be [C, H, W], [C, L] or [F]",
            fmt_shape(&shape)
        )));
    }
    if checked_numel(&shape).is_none() {
        return Err(graph_err("input.shape is too large"));
    }
    let kind = match obj.get("kind").and_then(Json::as_str) {
        Some("static") => InputKind::Static,
        Some("events") => InputKind::Events,
        Some("sequence") => InputKind::Sequence,
        Some(k) => {
            return Err(graph_err(format!(
                "input.kind must be \"static\", \"events\" or \"sequence\", got \"{k}\""
            )))
        }
        None => return Err(graph_err("input: missing string 'kind'")),
    };
    if kind == InputKind::Events && event_sensor(&shape).is_none() {
        return Err(graph_err(format!(
            "input.shape {} for event input must be [C, H, W] or [C, L] with C in {{1, 2}}, or [F]",
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
    let signed = match obj.get("signed") {
        None | Some(Json::Null) => true,
        Some(Json::Bool(b)) => *b,
        Some(v) => {
            return Err(graph_err(format!(
                "input.signed must be true or false, got {} ({v})",
                json_type(v)
            )))
        }
    };
    Ok(InputSpec {
        shape,
        kind,
        scale,
        signed,
    })
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

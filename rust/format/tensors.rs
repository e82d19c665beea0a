//! The tensors a node owns: which fields each op has, and the dtype, shape and value rules of
//! each (docs/model-format.md §1).

use std::collections::HashMap;

use super::graph::{fmt_shape, Graph, NodeSpec, OpKind};
use crate::error::{Result, SnnError};
use crate::numeric::Precision;

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
        OpKind::Linear | OpKind::Conv2d | OpKind::Conv1d => vec![
            fs("weight", true, Role::Weight, Check::None),
            fs("bias", false, Role::Bias, Check::None),
        ],
        OpKind::AvgPool2d
        | OpKind::SumPool2d
        | OpKind::AvgPool1d
        | OpKind::SumPool1d
        | OpKind::Flatten
        | OpKind::Add
        | OpKind::Delay => vec![],
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
            fs("fire", true, Role::Channel, Check::Positive),
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
pub(crate) fn take_params(
    graph: &Graph,
    mut tensors: HashMap<String, Tensor>,
) -> Result<Vec<NodeParams>> {
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
            "dtype {} ({}) where {} precision needs {want} ({}){why}",
            t.data.dtype_name(),
            numpy_name(t.data.dtype_name()),
            graph.precision.as_str(),
            numpy_name(want)
        )));
    }

    // shape
    let c = node.shape[0];
    let shape_ok = match spec.role {
        Role::Weight => {
            let want: Vec<usize> = if node.op == OpKind::Linear {
                vec![a.out_features, a.in_features]
            } else if node.op == OpKind::Conv1d {
                vec![a.out_channels, a.in_channels, a.kernel[1]]
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

/// The numpy name of a safetensors dtype (messages for Python users).
fn numpy_name(dtype: &str) -> &str {
    match dtype {
        "F64" => "float64",
        "F32" => "float32",
        "F16" => "float16",
        "BF16" => "bfloat16",
        "I64" => "int64",
        "I32" => "int32",
        "I16" => "int16",
        "I8" => "int8",
        "U64" => "uint64",
        "U32" => "uint32",
        "U16" => "uint16",
        "U8" => "uint8",
        "BOOL" => "bool",
        _ => "no numpy equivalent",
    }
}

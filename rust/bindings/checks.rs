//! `snnsim._core.validate_file` (the one validator of model files, also used by the Python
//! package) and the memory limit of the engine (`memory_limit`, `set_memory_limit`).

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};

use super::arrays::int_arg;
use super::{detached, to_py};
use crate::error::SnnError;
use crate::format;

/// Validates the bytes of a model file (container, graph JSON, tensors) without compiling it;
/// returns its description: precision, input (shape, kind, scale, signed), the node names, ops and
/// shapes in topological order, the output node.
#[pyfunction]
pub(super) fn validate_file<'py>(py: Python<'py>, data: &[u8]) -> PyResult<Bound<'py, PyDict>> {
    let mf = detached(py, || format::read_bytes(data))?;
    let g = &mf.graph;
    let d = PyDict::new(py);
    d.set_item("precision", g.precision.as_str())?;
    d.set_item("input_shape", PyTuple::new(py, &g.input.shape)?)?;
    d.set_item("input_kind", g.input.kind.as_str())?;
    d.set_item("input_scale", g.input.scale)?;
    d.set_item("input_signed", g.input.signed)?;
    let names: Vec<&str> = g.nodes.iter().map(|n| n.name.as_str()).collect();
    let ops: Vec<&str> = g.nodes.iter().map(|n| n.op.as_str()).collect();
    let shapes = g
        .nodes
        .iter()
        .map(|n| PyTuple::new(py, &n.shape))
        .collect::<PyResult<Vec<_>>>()?;
    d.set_item("node_names", names)?;
    d.set_item("node_ops", ops)?;
    d.set_item("node_shapes", shapes)?;
    d.set_item("output", g.nodes[g.output].name.as_str())?;
    Ok(d)
}

/// The engine's memory limit in bytes (what one run, stream step or compiled network may
/// allocate).
#[pyfunction]
pub(super) fn memory_limit() -> PyResult<u64> {
    crate::engine::memory_limit().map_err(to_py)
}

/// Sets the memory limit: bytes (an int >= 1, or a string such as "16G": a number with an
/// optional K, M, G or T suffix, powers of 1024); None goes back to `SNNSIM_MEMORY_LIMIT` or
/// the default.
#[pyfunction]
#[pyo3(signature = (nbytes))]
pub(super) fn set_memory_limit(nbytes: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
    let bytes = match nbytes.filter(|b| !b.is_none()) {
        None => None,
        Some(b) => {
            if let Ok(s) = b.extract::<String>() {
                Some(crate::engine::parse_bytes(&s).ok_or_else(|| {
                    to_py(SnnError::arg(
                        "nbytes",
                        format!(
                            "'{s}' is not a byte count (a positive integer, optionally with a \
                             K, M, G or T suffix)"
                        ),
                    ))
                })?)
            } else {
                let v = int_arg(b, "nbytes")?;
                if v < 1 {
                    return Err(to_py(SnnError::arg(
                        "nbytes",
                        format!("the memory limit must be >= 1 byte, got {v}"),
                    )));
                }
                Some(v as u64)
            }
        }
    };
    crate::engine::set_memory_limit(bytes).map_err(to_py)
}

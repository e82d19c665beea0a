//! Python bindings (`snnsim._core`): the only module that knows pyo3/numpy. Arrays are read
//! without copying (C-contiguous required), the GIL is released while the engine works, and
//! every engine error becomes a `ValueError` carrying its message.

mod arrays;
mod checks;
mod events;
mod model;
mod simd;
mod training;

use std::panic::{catch_unwind, AssertUnwindSafe};

use pyo3::exceptions::{PyOSError, PyValueError};
use pyo3::prelude::*;

use crate::error::SnnError;

/// An engine error as the matching exception of `snnsim.errors` (all `ValueError`s): model
/// files -> `ModelError`, arguments and events -> `InputError`, resource limits ->
/// `LimitError`, overflows -> `NumericError`; a plain `ValueError` when that module is not
/// importable. A file that cannot be read is an `OSError`.
pub(super) fn to_py(e: SnnError) -> PyErr {
    let class = match &e {
        SnnError::Io { .. } => return PyOSError::new_err(e.to_string()),
        SnnError::File(_)
        | SnnError::Graph(_)
        | SnnError::Node { .. }
        | SnnError::Tensor { .. } => "ModelError",
        SnnError::Arg { .. } | SnnError::Events { .. } => "InputError",
        SnnError::Limit { .. } => "LimitError",
        SnnError::Overflow { .. } | SnnError::NonFinite { .. } => "NumericError",
        SnnError::Internal(_) => "SnnsimError",
    };
    let msg = e.to_string();
    Python::attach(|py| {
        py.import("snnsim.errors")
            .and_then(|m| m.getattr(class))
            .and_then(|c| c.call1((msg.as_str(),)))
            .map(PyErr::from_value)
            .unwrap_or_else(|_| PyValueError::new_err(msg.clone()))
    })
}

/// Runs engine work without the GIL; a panic (a bug) becomes a ValueError, never an abort.
pub(super) fn detached<T: Send, F: FnOnce() -> Result<T, SnnError> + Send>(
    py: Python<'_>,
    f: F,
) -> PyResult<T> {
    py.detach(|| match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r.map_err(to_py),
        Err(p) => {
            let msg = p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_string());
            Err(PyValueError::new_err(format!(
                "internal error in the snnsim engine: {msg}"
            )))
        }
    })
}

/// The native engine of snnsim.
#[pymodule]
mod _core {
    /// Largest `threads` argument of a run.
    #[pymodule_export]
    const MAX_THREADS: usize = crate::engine::MAX_THREADS;

    #[pymodule_export]
    use super::checks::memory_limit;
    #[pymodule_export]
    use super::checks::set_memory_limit;
    #[pymodule_export]
    use super::checks::validate_file;
    #[pymodule_export]
    use super::events::bin_events;
    #[pymodule_export]
    use super::model::PyModel;
    #[pymodule_export]
    use super::model::PyStreamState;
    #[pymodule_export]
    use super::simd::set_simd_level;
    #[pymodule_export]
    use super::simd::simd_level;
    #[pymodule_export]
    use super::training::dsr_forward;
    #[pymodule_export]
    use super::training::dsr_rate_backward;
}

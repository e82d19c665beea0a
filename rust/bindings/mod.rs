//! Python bindings (`snnsim._core`): the only module that knows pyo3/numpy. Arrays are read
//! without copying (C-contiguous required), the GIL is released while the engine works, and
//! every engine error becomes a `ValueError` carrying its message.

mod arrays;
mod events;
mod model;
mod simd;
mod training;

use std::panic::{catch_unwind, AssertUnwindSafe};

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::error::SnnError;

pub(super) fn to_py(e: SnnError) -> PyErr {
    PyValueError::new_err(e.to_string())
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

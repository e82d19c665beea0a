//! `snnsim._core.simd_level` / `set_simd_level`: which instruction set the kernels use.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::kernels::simd::{self, Level};

/// The instruction set the engine's kernels run with: "portable", "avx2" or "avx512".
#[pyfunction]
pub(super) fn simd_level() -> &'static str {
    simd::level().as_str()
}

/// Caps the kernels' instruction set at `level` ("portable", "avx2", "avx512"; None: the best
/// the CPU supports) and returns the level now in effect. Results do not depend on it.
#[pyfunction]
#[pyo3(signature = (level=None))]
pub(super) fn set_simd_level(level: Option<&str>) -> PyResult<&'static str> {
    let cap = match level {
        None => None,
        Some(s) => Some(Level::parse(s).ok_or_else(|| {
            PyValueError::new_err(format!(
                "level: expected 'portable', 'avx2', 'avx512' or None, got {s:?}"
            ))
        })?),
    };
    Ok(simd::set_level(cap).as_str())
}

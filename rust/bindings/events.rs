//! `snnsim._core.bin_events`: event recordings binned into dense frames.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use super::arrays::{nd, steps_arg, EventArrays};
use super::{detached, to_py};
use crate::events::Binning;

/// Dense frames [B, steps, C, H, W] of event counts (int32).
#[allow(clippy::too_many_arguments)]
#[pyfunction]
#[pyo3(signature = (x, y, p, t, offsets, shape, steps, binning))]
pub(super) fn bin_events<'py>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    y: &Bound<'py, PyAny>,
    p: &Bound<'py, PyAny>,
    t: &Bound<'py, PyAny>,
    offsets: &Bound<'py, PyAny>,
    shape: (i64, i64, i64),
    steps: &Bound<'py, PyAny>,
    binning: &str,
) -> PyResult<Bound<'py, PyAny>> {
    let steps = steps_arg(steps)?;
    let binning = Binning::parse(binning).map_err(to_py)?;
    let (c, h, w) = shape;
    if c < 1 || h < 1 || w < 1 {
        return Err(PyValueError::new_err(format!(
            "shape: dimensions must be >= 1, got ({c}, {h}, {w})"
        )));
    }
    let shape = [c as usize, h as usize, w as usize];
    let arrays = EventArrays::read([x, y, p, t, offsets])?;
    let ev = arrays.batch()?;
    let b = ev.offsets.len().saturating_sub(1);
    let frames = detached(py, || crate::engine::bin_events(&ev, shape, steps, binning))?;
    nd(py, vec![b, steps, shape[0], shape[1], shape[2]], frames)
}

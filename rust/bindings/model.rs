//! `snnsim._core.Model` and `snnsim._core.StreamState`.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};

use std::sync::Mutex;

use super::arrays::{
    check_sample_shape, i64_array, int_arg, nd, result_dict, slice_of, steps_arg, threads_arg,
    value_array, EventArrays,
};
use super::{detached, to_py};
use crate::engine::{Model, StreamState};
use crate::error::SnnError;
use crate::events::{Binning, Events};
use crate::numeric::Precision;

/// A network loaded from a snnsim safetensors file and compiled for the engine.
#[pyclass(module = "snnsim._core", name = "Model", frozen)]
pub struct PyModel {
    inner: Model,
}

#[pymethods]
impl PyModel {
    #[staticmethod]
    fn load(py: Python<'_>, path: std::path::PathBuf) -> PyResult<PyModel> {
        let m = detached(py, || Model::load(&path))?;
        Ok(PyModel { inner: m })
    }

    #[staticmethod]
    fn from_bytes(py: Python<'_>, data: &[u8]) -> PyResult<PyModel> {
        let m = detached(py, || Model::from_bytes(data))?;
        Ok(PyModel { inner: m })
    }

    #[getter]
    fn precision(&self) -> &'static str {
        self.inner.info().precision.as_str()
    }

    #[getter]
    fn input_shape<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        PyTuple::new(py, &self.inner.info().input_shape)
    }

    #[getter]
    fn input_kind(&self) -> &'static str {
        self.inner.info().input_kind.as_str()
    }

    #[getter]
    fn input_scale(&self) -> Option<f64> {
        self.inner.info().input_scale
    }

    #[getter]
    fn input_signed(&self) -> bool {
        self.inner.info().input_signed
    }

    #[getter]
    fn node_names(&self) -> Vec<String> {
        self.inner.info().node_names.clone()
    }

    #[getter]
    fn node_ops(&self) -> Vec<String> {
        self.inner.info().node_ops.clone()
    }

    #[getter]
    fn node_shapes<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyTuple>>> {
        self.inner
            .info()
            .node_shapes
            .iter()
            .map(|s| PyTuple::new(py, s))
            .collect()
    }

    #[getter]
    fn output(&self) -> String {
        self.inner.info().output.clone()
    }

    fn dense_macs<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let v = self.inner.dense_macs();
        nd(py, vec![v.len()], v)
    }

    #[pyo3(signature = (x, steps, record, threads=None))]
    fn run_static<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
        steps: &Bound<'py, PyAny>,
        record: Vec<String>,
        threads: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let steps = steps_arg(steps)?;
        let threads = threads_arg(threads)?;
        let info = self.inner.info();
        let arr = value_array(x, "x", info.precision)?;
        check_sample_shape("x", &arr.shape(), 1, &info.input_shape, "B")?;
        let data = arr.data("x")?;
        let model = &self.inner;
        let r = detached(py, || model.run_static(data, steps, &record, threads))?;
        result_dict(py, r)
    }

    #[pyo3(signature = (frames, record, threads=None))]
    fn run_frames<'py>(
        &self,
        py: Python<'py>,
        frames: &Bound<'py, PyAny>,
        record: Vec<String>,
        threads: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let threads = threads_arg(threads)?;
        let info = self.inner.info();
        let arr = value_array(frames, "frames", info.precision)?;
        let shape = arr.shape();
        check_sample_shape("frames", &shape, 2, &info.input_shape, "B, T")?;
        let (b, t) = (shape[0], shape[1]);
        if t == 0 {
            return Err(PyValueError::new_err(
                "frames: T = frames.shape[1] must be >= 1",
            ));
        }
        let data = arr.data("frames")?;
        let model = &self.inner;
        let r = detached(py, || model.run_frames(data, b, t, &record, threads))?;
        result_dict(py, r)
    }

    /// `binning`: "time", "count", or "window" with `dt_us` (fixed windows from each
    /// sample's first event; events after `steps` windows are dropped).
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (x, y, p, t, offsets, steps, binning, record, threads=None, dt_us=None))]
    fn run_events<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
        y: &Bound<'py, PyAny>,
        p: &Bound<'py, PyAny>,
        t: &Bound<'py, PyAny>,
        offsets: &Bound<'py, PyAny>,
        steps: &Bound<'py, PyAny>,
        binning: &str,
        record: Vec<String>,
        threads: Option<&Bound<'py, PyAny>>,
        dt_us: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let steps = steps_arg(steps)?;
        let threads = threads_arg(threads)?;
        let dt_us = match dt_us.filter(|d| !d.is_none()) {
            Some(d) => Some(int_arg(d, "dt_us")?),
            None => None,
        };
        let binning = match (binning, dt_us) {
            ("window", Some(dt)) => Binning::window(dt).map_err(to_py)?,
            ("window", None) => {
                return Err(to_py(SnnError::arg(
                    "dt_us",
                    "binning \"window\" needs dt_us (the window length in microseconds)",
                )))
            }
            (b, None) => Binning::parse(b).map_err(to_py)?,
            (_, Some(_)) => {
                return Err(to_py(SnnError::arg(
                    "dt_us",
                    "applies to binning \"window\" only",
                )))
            }
        };
        let arrays = EventArrays::read([x, y, p, t, offsets])?;
        let ev = arrays.batch()?;
        let model = &self.inner;
        let r = detached(py, || {
            model.run_events(&ev, steps, binning, &record, threads)
        })?;
        result_dict(py, r)
    }

    fn new_stream(&self) -> PyStreamState {
        PyStreamState {
            inner: Mutex::new(self.inner.new_stream()),
            input_shape: self.inner.info().input_shape.clone(),
            precision: self.inner.info().precision,
        }
    }

    fn __repr__(&self) -> String {
        let i = self.inner.info();
        format!(
            "<snnsim._core.Model {} nodes, precision={}, input={:?} ({}), output='{}'>",
            i.node_names.len(),
            i.precision.as_str(),
            i.input_shape,
            i.input_kind.as_str(),
            i.output
        )
    }
}

/// Neuron state of one sample kept between calls (batch 1). Calls from several threads are
/// serialised (a lock held while the engine works, without the GIL).
#[pyclass(module = "snnsim._core", name = "StreamState", frozen)]
pub struct PyStreamState {
    inner: Mutex<StreamState>,
    input_shape: Vec<usize>,
    precision: Precision,
}

impl PyStreamState {
    /// Runs `f` on the state without the GIL, holding the state's lock.
    fn with<T: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&mut StreamState) -> Result<T, SnnError> + Send,
    ) -> PyResult<T> {
        let inner = &self.inner;
        detached(py, || {
            // a panic while the lock was held poisons it; the state itself is only replaced
            // after a successful step, so it is still consistent
            let mut g = inner.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut g)
        })
    }
}

#[pymethods]
impl PyStreamState {
    #[getter]
    fn steps_done(&self, py: Python<'_>) -> PyResult<usize> {
        self.with(py, |s| Ok(s.steps_done()))
    }

    fn feed_frames<'py>(
        &self,
        py: Python<'py>,
        frames: &Bound<'py, PyAny>,
        record: Vec<String>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let arr = value_array(frames, "frames", self.precision)?;
        check_sample_shape("frames", &arr.shape(), 1, &self.input_shape, "T")?;
        let data = arr.data("frames")?;
        let r = self.with(py, |st| st.feed_frames(data, &record))?;
        result_dict(py, r)
    }

    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (x, y, p, t, origin_us, dt_us, steps, record))]
    fn feed_events<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
        y: &Bound<'py, PyAny>,
        p: &Bound<'py, PyAny>,
        t: &Bound<'py, PyAny>,
        origin_us: &Bound<'py, PyAny>,
        dt_us: &Bound<'py, PyAny>,
        steps: &Bound<'py, PyAny>,
        record: Vec<String>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let steps = steps_arg(steps)?;
        let origin_us = int_arg(origin_us, "origin_us")?;
        let dt_us = int_arg(dt_us, "dt_us")?;
        let (xa, ya, pa, ta) = (
            i64_array(x, "x")?,
            i64_array(y, "y")?,
            i64_array(p, "p")?,
            i64_array(t, "t")?,
        );
        let (xs, ys, ps, ts) = (
            slice_of(&xa, "x")?,
            slice_of(&ya, "y")?,
            slice_of(&pa, "p")?,
            slice_of(&ta, "t")?,
        );
        let e = xs.len();
        for (name, s) in [("y", ys), ("p", ps), ("t", ts)] {
            if s.len() != e {
                return Err(PyValueError::new_err(format!(
                    "{name}: has {} events, x has {e} (all event arrays must have one length)",
                    s.len()
                )));
            }
        }
        let ev = Events {
            x: xs,
            y: ys,
            p: ps,
            t: ts,
        };
        let r = self.with(py, |st| {
            st.feed_events(&ev, origin_us, dt_us, steps, &record)
        })?;
        result_dict(py, r)
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        let done = self.steps_done(py).unwrap_or(0);
        format!("<snnsim._core.StreamState steps_done={done}>")
    }
}

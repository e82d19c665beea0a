//! Python bindings (`snnsim._core`): the only module that knows pyo3/numpy. Arrays are read
//! without copying (C-contiguous required), the GIL is released while the engine works, and
//! every engine error becomes a `ValueError` carrying its message.

use std::panic::{catch_unwind, AssertUnwindSafe};

use numpy::ndarray::{ArrayD, IxDyn};
use numpy::{
    IntoPyArray, PyArray1, PyArrayDyn, PyArrayMethods, PyReadonlyArrayDyn, PyUntypedArrayMethods,
};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};

use crate::engine::Data;
use crate::error::SnnError;
use crate::events::{Binning, EventBatch, Events};
use crate::model::{Model, RunResult, StreamState};
use crate::numeric::Precision;
use crate::training::{simulate_dsr, DsrForward, DsrLaw, DsrOutputs, Pool};

fn to_py(e: SnnError) -> PyErr {
    PyValueError::new_err(e.to_string())
}

/// Runs engine work without the GIL; a panic (a bug) becomes a ValueError, never an abort.
fn detached<T: Send, F: FnOnce() -> Result<T, SnnError> + Send>(
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

fn dtype_of(obj: &Bound<'_, PyAny>) -> String {
    obj.getattr("dtype")
        .and_then(|d| d.str().map(|s| s.to_string()))
        .unwrap_or_else(|_| {
            obj.get_type()
                .name()
                .map(|n| n.to_string())
                .unwrap_or_default()
        })
}

/// A numpy array of the model's value dtype.
enum Arr<'py> {
    F32(PyReadonlyArrayDyn<'py, f32>),
    I32(PyReadonlyArrayDyn<'py, i32>),
}

impl Arr<'_> {
    fn shape(&self) -> Vec<usize> {
        match self {
            Arr::F32(a) => a.shape().to_vec(),
            Arr::I32(a) => a.shape().to_vec(),
        }
    }
    fn data(&self, arg: &str) -> PyResult<Data<'_>> {
        let not_c = || PyValueError::new_err(format!("{arg}: the array must be C-contiguous"));
        let c_contig = match self {
            Arr::F32(a) => a.is_c_contiguous(),
            Arr::I32(a) => a.is_c_contiguous(),
        };
        if !c_contig {
            return Err(not_c());
        }
        Ok(match self {
            Arr::F32(a) => Data::F32(a.as_slice().map_err(|_| not_c())?),
            Arr::I32(a) => Data::I32(a.as_slice().map_err(|_| not_c())?),
        })
    }
}

fn value_array<'py>(
    obj: &Bound<'py, PyAny>,
    arg: &str,
    precision: Precision,
) -> PyResult<Arr<'py>> {
    let borrowed =
        |_| PyValueError::new_err(format!("{arg}: the array is being written elsewhere"));
    match precision {
        Precision::Float32 => match obj.cast::<PyArrayDyn<f32>>() {
            Ok(a) => Ok(Arr::F32(a.try_readonly().map_err(borrowed)?)),
            Err(_) => Err(PyTypeError::new_err(format!(
                "{arg}: expected a numpy float32 array for a float32 model, got {}",
                dtype_of(obj)
            ))),
        },
        Precision::Int => match obj.cast::<PyArrayDyn<i32>>() {
            Ok(a) => Ok(Arr::I32(a.try_readonly().map_err(borrowed)?)),
            Err(_) => Err(PyTypeError::new_err(format!(
                "{arg}: expected a numpy int32 array for an int model, got {}",
                dtype_of(obj)
            ))),
        },
    }
}

fn i64_array<'py>(obj: &Bound<'py, PyAny>, arg: &str) -> PyResult<PyReadonlyArrayDyn<'py, i64>> {
    let a = obj.cast::<PyArrayDyn<i64>>().map_err(|_| {
        PyTypeError::new_err(format!(
            "{arg}: expected a numpy int64 array, got {}",
            dtype_of(obj)
        ))
    })?;
    let r = a.try_readonly().map_err(|_| {
        PyValueError::new_err(format!("{arg}: the array is being written elsewhere"))
    })?;
    if r.ndim() != 1 {
        return Err(PyValueError::new_err(format!(
            "{arg}: expected a 1-D array, got {} dimensions",
            r.ndim()
        )));
    }
    Ok(r)
}

fn slice_of<'a>(a: &'a PyReadonlyArrayDyn<'_, i64>, arg: &str) -> PyResult<&'a [i64]> {
    if !a.is_c_contiguous() {
        return Err(PyValueError::new_err(format!(
            "{arg}: the array must be C-contiguous"
        )));
    }
    a.as_slice()
        .map_err(|_| PyValueError::new_err(format!("{arg}: the array must be C-contiguous")))
}

/// The int64 arrays `x, y, p, t, offsets` of a batch of recordings, read-only from numpy.
struct EventArrays<'py>([PyReadonlyArrayDyn<'py, i64>; 5]);

impl<'py> EventArrays<'py> {
    const NAMES: [&'static str; 5] = ["x", "y", "p", "t", "offsets"];

    fn read(objs: [&Bound<'py, PyAny>; 5]) -> PyResult<Self> {
        let [x, y, p, t, o] = objs;
        let n = Self::NAMES;
        Ok(Self([
            i64_array(x, n[0])?,
            i64_array(y, n[1])?,
            i64_array(p, n[2])?,
            i64_array(t, n[3])?,
            i64_array(o, n[4])?,
        ]))
    }

    fn batch(&self) -> PyResult<EventBatch<'_>> {
        let [x, y, p, t, o] = &self.0;
        let n = Self::NAMES;
        Ok(EventBatch {
            x: slice_of(x, n[0])?,
            y: slice_of(y, n[1])?,
            p: slice_of(p, n[2])?,
            t: slice_of(t, n[3])?,
            offsets: slice_of(o, n[4])?,
        })
    }
}

fn steps_arg(steps: i64) -> PyResult<usize> {
    if steps < 1 {
        return Err(PyValueError::new_err(format!(
            "steps: must be >= 1, got {steps}"
        )));
    }
    usize::try_from(steps).map_err(|_| PyValueError::new_err("steps: too large"))
}

fn threads_arg(threads: Option<i64>) -> PyResult<Option<usize>> {
    match threads {
        None => Ok(None),
        Some(t) if t >= 1 => Ok(Some(t as usize)),
        Some(t) => Err(PyValueError::new_err(format!(
            "threads: must be >= 1 or None, got {t}"
        ))),
    }
}

fn nd<'py, T: numpy::Element>(
    py: Python<'py>,
    shape: Vec<usize>,
    v: Vec<T>,
) -> PyResult<Bound<'py, PyAny>> {
    let a = ArrayD::from_shape_vec(IxDyn(&shape), v)
        .map_err(|e| PyValueError::new_err(format!("internal error: result shape: {e}")))?;
    Ok(a.into_pyarray(py).into_any())
}

fn result_dict<'py>(py: Python<'py>, r: RunResult) -> PyResult<Bound<'py, PyDict>> {
    let (b, n, l, t) = (r.batch, r.n_out, r.n_nodes, r.steps);
    let d = PyDict::new(py);
    d.set_item("output", nd(py, vec![b, n], r.output)?)?;
    d.set_item("output_sum", nd(py, vec![b, n], r.output_sum)?)?;
    d.set_item("prediction", nd(py, vec![b], r.prediction)?)?;
    let c = PyDict::new(py);
    let counts = r.counts;
    c.set_item("spikes", nd(py, vec![b, l, t], counts.spikes)?)?;
    c.set_item("sops", nd(py, vec![b, l, t], counts.sops)?)?;
    c.set_item("macs", nd(py, vec![b, l, t], counts.macs)?)?;
    c.set_item("aux_ops", nd(py, vec![b, l, t], counts.aux_ops)?)?;
    c.set_item(
        "state_updates",
        nd(py, vec![b, l, t], counts.state_updates)?,
    )?;
    d.set_item("counts", c)?;
    let rec = PyDict::new(py);
    for rr in r.record {
        let mut shape = vec![b, t];
        shape.extend_from_slice(&rr.shape);
        rec.set_item(rr.name, nd(py, shape, rr.data)?)?;
    }
    d.set_item("record", rec)?;
    Ok(d)
}

fn check_sample_shape(
    arg: &str,
    got: &[usize],
    lead: usize,
    want: &[usize],
    what: &str,
) -> PyResult<()> {
    if got.len() != lead + want.len() || got[lead..] != *want {
        let w: Vec<String> = want.iter().map(|v| v.to_string()).collect();
        return Err(PyValueError::new_err(format!(
            "{arg}: expected shape [{what}{}], got {:?}",
            w.iter().map(|s| format!(", {s}")).collect::<String>(),
            got
        )));
    }
    Ok(())
}

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
        steps: i64,
        record: Vec<String>,
        threads: Option<i64>,
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
        threads: Option<i64>,
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

    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (x, y, p, t, offsets, steps, binning, record, threads=None))]
    fn run_events<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
        y: &Bound<'py, PyAny>,
        p: &Bound<'py, PyAny>,
        t: &Bound<'py, PyAny>,
        offsets: &Bound<'py, PyAny>,
        steps: i64,
        binning: &str,
        record: Vec<String>,
        threads: Option<i64>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let steps = steps_arg(steps)?;
        let threads = threads_arg(threads)?;
        let binning = Binning::parse(binning).map_err(to_py)?;
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
            inner: self.inner.new_stream(),
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

/// Neuron state of one sample kept between calls (batch 1).
#[pyclass(module = "snnsim._core", name = "StreamState")]
pub struct PyStreamState {
    inner: StreamState,
    input_shape: Vec<usize>,
    precision: Precision,
}

#[pymethods]
impl PyStreamState {
    #[getter]
    fn steps_done(&self) -> usize {
        self.inner.steps_done()
    }

    fn feed_frames<'py>(
        &mut self,
        py: Python<'py>,
        frames: &Bound<'py, PyAny>,
        record: Vec<String>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let arr = value_array(frames, "frames", self.precision)?;
        check_sample_shape("frames", &arr.shape(), 1, &self.input_shape, "T")?;
        let data = arr.data("frames")?;
        let st = &mut self.inner;
        let r = detached(py, || st.feed_frames(data, &record))?;
        result_dict(py, r)
    }

    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (x, y, p, t, origin_us, dt_us, steps, record))]
    fn feed_events<'py>(
        &mut self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
        y: &Bound<'py, PyAny>,
        p: &Bound<'py, PyAny>,
        t: &Bound<'py, PyAny>,
        origin_us: i64,
        dt_us: i64,
        steps: i64,
        record: Vec<String>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let steps = steps_arg(steps)?;
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
        let st = &mut self.inner;
        let r = detached(py, || st.feed_events(&ev, origin_us, dt_us, steps, &record))?;
        result_dict(py, r)
    }

    fn __repr__(&self) -> String {
        format!(
            "<snnsim._core.StreamState steps_done={}>",
            self.inner.steps_done()
        )
    }
}

/// Dense frames [B, steps, C, H, W] of event counts (int32).
#[allow(clippy::too_many_arguments)]
#[pyfunction]
#[pyo3(signature = (x, y, p, t, offsets, shape, steps, binning))]
fn bin_events<'py>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    y: &Bound<'py, PyAny>,
    p: &Bound<'py, PyAny>,
    t: &Bound<'py, PyAny>,
    offsets: &Bound<'py, PyAny>,
    shape: (i64, i64, i64),
    steps: i64,
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
    let frames = detached(py, || crate::model::bin_events(&ev, shape, steps, binning))?;
    nd(py, vec![b, steps, shape[0], shape[1], shape[2]], frames)
}

fn f32_flat<'py>(obj: &Bound<'py, PyAny>, arg: &str) -> PyResult<Bound<'py, PyArray1<f32>>> {
    let a = obj.cast::<PyArray1<f32>>().map_err(|_| {
        PyTypeError::new_err(format!(
            "{arg}: expected a 1-D numpy float32 array, got {}",
            dtype_of(obj)
        ))
    })?;
    if !a.is_c_contiguous() {
        return Err(PyValueError::new_err(format!(
            "{arg}: the array must be C-contiguous"
        )));
    }
    Ok(a.clone())
}

/// Fused forward of a DSR neuron layer for training (see `training.rs`): reads the currents
/// `x`, writes `out`, `mean_current`, `mean_out` in place; returns the spike count.
#[allow(clippy::too_many_arguments)]
#[pyfunction]
#[pyo3(signature = (x, out, mean_current, mean_out, steps, static_input, kind, theta, fire, value, leak=None, gain=None, current_weights=None, membrane=None, accumulate=None, pool=None))]
fn dsr_forward<'py>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    out: &Bound<'py, PyAny>,
    mean_current: &Bound<'py, PyAny>,
    mean_out: &Bound<'py, PyAny>,
    steps: i64,
    static_input: bool,
    kind: &str,
    theta: f32,
    fire: f32,
    value: f32,
    leak: Option<f32>,
    gain: Option<f32>,
    current_weights: Option<&Bound<'py, PyAny>>,
    membrane: Option<&Bound<'py, PyAny>>,
    accumulate: Option<f32>,
    pool: Option<(usize, usize, usize, usize, bool)>,
) -> PyResult<u64> {
    let steps = steps_arg(steps)?;
    let law = match (kind, leak, gain) {
        ("if", None, None) => DsrLaw::If { theta, fire },
        ("lif", Some(leak), Some(gain)) => DsrLaw::Lif {
            theta,
            fire,
            leak,
            gain,
        },
        ("if" | "lif", _, _) => {
            return Err(PyValueError::new_err(format!(
                "kind: '{kind}' takes leak and gain {} ",
                if kind == "lif" {
                    "(both required)"
                } else {
                    "never"
                }
            )))
        }
        _ => {
            return Err(PyValueError::new_err(format!(
                "kind: expected 'if' or 'lif', got '{kind}'"
            )))
        }
    };
    let xa = f32_flat(x, "x")?;
    let wa = current_weights
        .map(|w| f32_flat(w, "current_weights"))
        .transpose()?;
    let (oa, ca, ma) = (
        f32_flat(out, "out")?,
        f32_flat(mean_current, "mean_current")?,
        f32_flat(mean_out, "mean_out")?,
    );
    let busy = |arg: &str| {
        let arg = arg.to_string();
        move |_| {
            PyValueError::new_err(format!(
                "{arg}: the array is shared or being used elsewhere"
            ))
        }
    };
    let xr = xa.try_readonly().map_err(busy("x"))?;
    let wr = wa
        .as_ref()
        .map(|w| w.try_readonly())
        .transpose()
        .map_err(busy("current_weights"))?;
    let mut ow = oa.try_readwrite().map_err(busy("out"))?;
    let mut cw = ca.try_readwrite().map_err(busy("mean_current"))?;
    let mut mw = ma.try_readwrite().map_err(busy("mean_out"))?;
    let va = membrane.map(|m| f32_flat(m, "membrane")).transpose()?;
    let mut vw = va
        .as_ref()
        .map(|m| m.try_readwrite())
        .transpose()
        .map_err(busy("membrane"))?;
    let not_c = |_| PyValueError::new_err("arrays must be C-contiguous");
    let f = DsrForward {
        x: xr.as_slice().map_err(not_c)?,
        static_input,
        steps,
        law,
        value,
        current_weights: match &wr {
            Some(w) => Some(w.as_slice().map_err(not_c)?),
            None => None,
        },
        accumulate,
        pool: pool.map(|(k, channels, height, width, channels_last)| Pool {
            k,
            channels,
            height,
            width,
            channels_last,
        }),
    };
    let o = DsrOutputs {
        out: ow.as_slice_mut().map_err(not_c)?,
        mean_current: cw.as_slice_mut().map_err(not_c)?,
        mean_out: mw.as_slice_mut().map_err(not_c)?,
        membrane: match vw.as_mut() {
            Some(m) => Some(m.as_slice_mut().map_err(not_c)?),
            None => None,
        },
    };
    detached(py, || simulate_dsr(&f, o))
}

/// The native engine of snnsim.
#[pymodule]
mod _core {
    #[pymodule_export]
    use super::bin_events;
    #[pymodule_export]
    use super::dsr_forward;
    #[pymodule_export]
    use super::PyModel;
    #[pymodule_export]
    use super::PyStreamState;
}

//! numpy arrays in and out: typed, C-contiguous, read-only views of the caller's arrays
//! (never copied), argument checks with messages naming the argument, result dictionaries.

use numpy::ndarray::{ArrayD, IxDyn};
use numpy::{IntoPyArray, PyArrayDyn, PyArrayMethods, PyReadonlyArrayDyn, PyUntypedArrayMethods};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::to_py;
use crate::engine::{Data, RunResult};
use crate::error::SnnError;
use crate::events::EventBatch;
use crate::numeric::Precision;

pub(super) fn dtype_of(obj: &Bound<'_, PyAny>) -> String {
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
pub(super) enum Arr<'py> {
    F32(PyReadonlyArrayDyn<'py, f32>),
    I32(PyReadonlyArrayDyn<'py, i32>),
}

impl Arr<'_> {
    pub(super) fn shape(&self) -> Vec<usize> {
        match self {
            Arr::F32(a) => a.shape().to_vec(),
            Arr::I32(a) => a.shape().to_vec(),
        }
    }
    pub(super) fn data(&self, arg: &str) -> PyResult<Data<'_>> {
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

pub(super) fn value_array<'py>(
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

pub(super) fn i64_array<'py>(
    obj: &Bound<'py, PyAny>,
    arg: &str,
) -> PyResult<PyReadonlyArrayDyn<'py, i64>> {
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

pub(super) fn slice_of<'a>(a: &'a PyReadonlyArrayDyn<'_, i64>, arg: &str) -> PyResult<&'a [i64]> {
    if !a.is_c_contiguous() {
        return Err(PyValueError::new_err(format!(
            "{arg}: the array must be C-contiguous"
        )));
    }
    a.as_slice()
        .map_err(|_| PyValueError::new_err(format!("{arg}: the array must be C-contiguous")))
}

/// The int64 arrays `x, y, p, t, offsets` of a batch of recordings, read-only from numpy.
pub(super) struct EventArrays<'py>([PyReadonlyArrayDyn<'py, i64>; 5]);

impl<'py> EventArrays<'py> {
    const NAMES: [&'static str; 5] = ["x", "y", "p", "t", "offsets"];

    pub(super) fn read(objs: [&Bound<'py, PyAny>; 5]) -> PyResult<Self> {
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

    pub(super) fn batch(&self) -> PyResult<EventBatch<'_>> {
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

/// A Python int that must fit in int64: `TypeError` for other types, `ValueError` naming
/// `arg` for an int beyond the int64 range (never pyo3's bare `OverflowError`).
pub(super) fn int_arg(obj: &Bound<'_, PyAny>, arg: &str) -> PyResult<i64> {
    if obj.is_instance_of::<pyo3::types::PyBool>() {
        return Err(PyTypeError::new_err(format!(
            "{arg}: expected an int, got bool"
        )));
    }
    obj.extract::<i64>().map_err(|_| {
        if obj.is_instance_of::<pyo3::types::PyInt>() {
            to_py(SnnError::arg(
                arg,
                format!(
                    "{} does not fit in int64",
                    obj.str().map(|s| s.to_string()).unwrap_or_default()
                ),
            ))
        } else {
            PyTypeError::new_err(format!(
                "{arg}: expected an int, got {}",
                obj.get_type()
                    .name()
                    .map(|n| n.to_string())
                    .unwrap_or_default()
            ))
        }
    })
}

pub(super) fn steps_arg(steps: &Bound<'_, PyAny>) -> PyResult<usize> {
    steps_value(int_arg(steps, "steps")?)
}

pub(super) fn steps_value(steps: i64) -> PyResult<usize> {
    if steps < 1 {
        return Err(to_py(SnnError::arg(
            "steps",
            format!("must be >= 1, got {steps}"),
        )));
    }
    usize::try_from(steps).map_err(|_| to_py(SnnError::arg("steps", "too large")))
}

pub(super) fn threads_arg(threads: Option<&Bound<'_, PyAny>>) -> PyResult<Option<usize>> {
    let Some(t) = threads.filter(|t| !t.is_none()) else {
        return Ok(None);
    };
    let t = int_arg(t, "threads")?;
    let max = crate::engine::MAX_THREADS;
    if t < 1 || t as u64 > max as u64 {
        return Err(to_py(SnnError::arg(
            "threads",
            format!("must be between 1 and {max} or None, got {t}"),
        )));
    }
    Ok(Some(t as usize))
}

pub(super) fn nd<'py, T: numpy::Element>(
    py: Python<'py>,
    shape: Vec<usize>,
    v: Vec<T>,
) -> PyResult<Bound<'py, PyAny>> {
    let a = ArrayD::from_shape_vec(IxDyn(&shape), v)
        .map_err(|e| PyValueError::new_err(format!("internal error: result shape: {e}")))?;
    Ok(a.into_pyarray(py).into_any())
}

pub(super) fn result_dict<'py>(py: Python<'py>, r: RunResult) -> PyResult<Bound<'py, PyDict>> {
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

pub(super) fn check_sample_shape(
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

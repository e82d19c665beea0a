//! `snnsim._core.dsr_forward` and `dsr_rate_backward`: the fused DSR neuron forward and
//! rate-form backward of the training layers.

use numpy::{PyArray1, PyArrayMethods, PyUntypedArrayMethods};
use pyo3::conversion::FromPyObjectOwned;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::arrays::{dtype_of, steps_value};
use super::{detached, to_py};
use crate::error::SnnError;
use crate::training::{
    dsr_rate_backward as rate_backward, simulate_dsr, DsrForward, DsrLaw, DsrOutputs, Pool,
    RateMask,
};

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

/// `arg` as a dict whose keys are all in `keys` (a misspelt key is an error, not ignored).
fn dict_arg<'py>(
    obj: &Bound<'py, PyAny>,
    arg: &str,
    keys: &[&str],
) -> PyResult<Bound<'py, PyDict>> {
    let d = obj.cast::<PyDict>().map_err(|_| {
        PyTypeError::new_err(format!("{arg}: expected a dict, got {}", dtype_of(obj)))
    })?;
    for k in d.keys() {
        let known = k
            .extract::<String>()
            .ok()
            .filter(|k| keys.contains(&k.as_str()));
        if known.is_none() {
            let key = k.repr().map(|r| r.to_string()).unwrap_or_default();
            return Err(to_py(SnnError::arg(
                arg,
                format!("unknown key {key} (keys: {})", keys.join(", ")),
            )));
        }
    }
    Ok(d.clone())
}

/// Item `key` of the dict argument `arg` (None when absent or None), of type `T` (`what`).
fn item<'py, T>(d: &Bound<'py, PyDict>, arg: &str, key: &str, what: &str) -> PyResult<Option<T>>
where
    T: FromPyObjectOwned<'py>,
{
    match d.get_item(key)? {
        Some(v) if !v.is_none() => v.extract::<T>().map(Some).map_err(|_| {
            PyTypeError::new_err(format!(
                "{arg}['{key}']: expected {what}, got {}",
                dtype_of(&v)
            ))
        }),
        _ => Ok(None),
    }
}

/// A required item of the dict argument `arg`.
fn required<'py, T>(d: &Bound<'py, PyDict>, arg: &str, key: &str, what: &str) -> PyResult<T>
where
    T: FromPyObjectOwned<'py>,
{
    item(d, arg, key, what)?
        .ok_or_else(|| to_py(SnnError::arg(arg, format!("missing key '{key}'"))))
}

/// The `law` argument: the neuron law and the value one spike carries.
fn law_arg(law: &Bound<'_, PyAny>) -> PyResult<(DsrLaw, f32)> {
    let d = dict_arg(
        law,
        "law",
        &["kind", "theta", "fire", "value", "leak", "gain"],
    )?;
    let kind: String = required(&d, "law", "kind", "a string")?;
    let theta = required(&d, "law", "theta", "a float")?;
    let fire = required(&d, "law", "fire", "a float")?;
    let value = required(&d, "law", "value", "a float")?;
    let leak = item(&d, "law", "leak", "a float")?;
    let gain = item(&d, "law", "gain", "a float")?;
    let law = DsrLaw::new(&kind, theta, fire, leak, gain).map_err(to_py)?;
    Ok((law, value))
}

/// The `options` argument: time-chunked state, mean weights and the fused pool.
struct Options<'py> {
    current_weights: Option<Bound<'py, PyAny>>,
    membrane: Option<Bound<'py, PyAny>>,
    accumulate: Option<f32>,
    pool: Option<Pool>,
}

fn options_arg<'py>(options: Option<&Bound<'py, PyAny>>) -> PyResult<Options<'py>> {
    let mut o = Options {
        current_weights: None,
        membrane: None,
        accumulate: None,
        pool: None,
    };
    let Some(options) = options.filter(|o| !o.is_none()) else {
        return Ok(o);
    };
    let keys = ["current_weights", "membrane", "accumulate", "pool"];
    let d = dict_arg(options, "options", &keys)?;
    o.current_weights = d.get_item("current_weights")?.filter(|v| !v.is_none());
    o.membrane = d.get_item("membrane")?.filter(|v| !v.is_none());
    o.accumulate = item(&d, "options", "accumulate", "a float")?;
    let pool: Option<(usize, usize, usize, usize, bool)> =
        item(&d, "options", "pool", "a tuple (k, C, H, W, channels_last)")?;
    o.pool = pool.map(|(k, channels, height, width, channels_last)| Pool {
        k,
        channels,
        height,
        width,
        channels_last,
    });
    Ok(o)
}

/// Fused forward of a DSR neuron layer for training (see `training.rs`): reads the currents
/// `x`, writes `out`, `mean_current`, `mean_out` in place; returns the spike count. `law`: the
/// law's constants (a dict); `options`: the optional state, weights and pool (a dict).
#[allow(clippy::too_many_arguments)]
#[pyfunction]
#[pyo3(signature = (x, out, mean_current, mean_out, steps, static_input, law, options=None))]
pub(super) fn dsr_forward<'py>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    out: &Bound<'py, PyAny>,
    mean_current: &Bound<'py, PyAny>,
    mean_out: &Bound<'py, PyAny>,
    steps: i64,
    static_input: bool,
    law: &Bound<'py, PyAny>,
    options: Option<&Bound<'py, PyAny>>,
) -> PyResult<u64> {
    let steps = steps_value(steps)?;
    let (law, value) = law_arg(law)?;
    let opts = options_arg(options)?;
    let (current_weights, membrane) = (opts.current_weights.as_ref(), opts.membrane.as_ref());
    let (accumulate, pool) = (opts.accumulate, opts.pool);
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
        pool,
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

/// Fused rate-form backward of a DSR neuron layer (see `training/backward.rs`): reads `grad`
/// and `mean_current`, writes `grad_in` in place; returns the threshold-gradient sum.
#[pyfunction]
#[pyo3(signature = (grad, mean_current, grad_in, upper, strict, tau=1.0))]
pub(super) fn dsr_rate_backward<'py>(
    py: Python<'py>,
    grad: &Bound<'py, PyAny>,
    mean_current: &Bound<'py, PyAny>,
    grad_in: &Bound<'py, PyAny>,
    upper: f32,
    strict: bool,
    tau: f32,
) -> PyResult<f64> {
    let (ga, ia, oa) = (
        f32_flat(grad, "grad")?,
        f32_flat(mean_current, "mean_current")?,
        f32_flat(grad_in, "grad_in")?,
    );
    let busy = |arg: &'static str| {
        move |_| {
            PyValueError::new_err(format!(
                "{arg}: the array is shared or being used elsewhere"
            ))
        }
    };
    let gr = ga.try_readonly().map_err(busy("grad"))?;
    let ir = ia.try_readonly().map_err(busy("mean_current"))?;
    let mut ow = oa.try_readwrite().map_err(busy("grad_in"))?;
    let not_c = |_| PyValueError::new_err("arrays must be C-contiguous");
    let (g, i) = (gr.as_slice().map_err(not_c)?, ir.as_slice().map_err(not_c)?);
    let o = ow.as_slice_mut().map_err(not_c)?;
    let mask = RateMask { upper, strict, tau };
    detached(py, || rate_backward(g, i, o, mask))
}

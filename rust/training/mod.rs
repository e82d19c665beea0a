//! Fused forward of a DSR neuron layer for training on the CPU.
//!
//! Training simulates every neuron layer over all `T` steps of a batch at once (tensors
//! `[T*B, ...]`, time-major). Written as torch element-wise ops, one layer costs about ten
//! passes over `T*B*N` floats (add, compare, cast, multiply, subtract, copies, the means); here
//! one pass does it all: it integrates the currents, fires, resets, writes the value each spike
//! carries, and accumulates the two time means the DSR backward needs (the mean input current
//! `I` and the mean output `r`) and the spike count.
//!
//! The arithmetic is the float law of `docs/model-format.md` in the same order as the torch
//! step functions (`snnsim.neurons.dsr_if_step` / `dsr_lif_step`), so the spikes are
//! bit-identical to theirs:
//!
//! * IF:  `U = V + x`
//! * LIF: `U = leak*V + gain*x` (two rounded products, one rounded sum)
//! * both: `s = U >= fire`; `V = U - theta*s`; the output is `value*s`.
//!
//! Layout: each step's slice of `x` and `out` holds the same `n` elements in the same memory
//! order as `mean_current` and `mean_out` (any order: the caller flattens contiguous or
//! channels-last tensors the same way). A static input is one slice applied at every step.

mod backward;
mod pool;

use rayon::prelude::*;

pub use backward::{dsr_rate_backward, RateMask};
use pool::pool_bands;
pub use pool::Pool;

use crate::error::{Result, SnnError};
use crate::kernels::simd::dispatch;
use crate::neurons::NeuronMath;

/// Element block one task integrates through all steps (its membrane stays in cache).
const BLOCK: usize = 2048;

/// The neuron law and its constants (float32, as computed by torch on the Python side).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DsrLaw {
    If {
        theta: f32,
        fire: f32,
    },
    Lif {
        theta: f32,
        fire: f32,
        leak: f32,
        gain: f32,
    },
}

impl DsrLaw {
    /// The law named `kind` (`"if"` or `"lif"`) with its constants; `leak` and `gain` are
    /// required for LIF and refused for IF.
    pub fn new(
        kind: &str,
        theta: f32,
        fire: f32,
        leak: Option<f32>,
        gain: Option<f32>,
    ) -> Result<DsrLaw> {
        let arg = |msg: String| {
            Err(SnnError::Arg {
                arg: "kind".into(),
                msg,
            })
        };
        match (kind, leak, gain) {
            ("if", None, None) => Ok(DsrLaw::If { theta, fire }),
            ("lif", Some(leak), Some(gain)) => Ok(DsrLaw::Lif {
                theta,
                fire,
                leak,
                gain,
            }),
            ("if", _, _) => arg("'if' takes leak and gain never".into()),
            ("lif", _, _) => arg("'lif' takes leak and gain (both required)".into()),
            _ => arg(format!("expected 'if' or 'lif', got '{kind}'")),
        }
    }
}

/// Inputs of [`simulate_dsr`].
#[derive(Debug, Clone, Copy)]
pub struct DsrForward<'a> {
    /// Currents: `steps * n` values (time-major) or `n` values when `static_input`.
    pub x: &'a [f32],
    pub static_input: bool,
    pub steps: usize,
    pub law: DsrLaw,
    /// What one spike carries to the next layer (`theta`, or `theta/dt` for LIF).
    pub value: f32,
    /// Weights of the mean current `I = sum_t w_t x_t` (`steps` values, e.g. the normalised
    /// `lambda^(T-t)` of LIF); `None`: the uniform mean `(sum_t x_t) / T` (IF). A static
    /// input is its own mean (`I = x`).
    pub current_weights: Option<&'a [f32]>,
    /// Time-chunked runs: `Some(scale)` adds this chunk's share to the means instead of
    /// writing them: `mean_current += sum_t w_t x_t` (weights required, a static input counts
    /// as `x` at every step) and `mean_out += scale * sum_t out_t`.
    pub accumulate: Option<f32>,
    /// Pool the outputs before writing them (`out` then holds `steps * n / k^2` values).
    pub pool: Option<Pool>,
}

/// Outputs of [`simulate_dsr`], written in place.
#[derive(Debug)]
pub struct DsrOutputs<'a> {
    /// `steps * n`: the value carried at every step (`value` or 0); pooled: `steps * n / k^2`.
    pub out: &'a mut [f32],
    /// `n`: the weighted mean input current `I`.
    pub mean_current: &'a mut [f32],
    /// `n`: the uniform time mean of `out`.
    pub mean_out: &'a mut [f32],
    /// `n`: the membrane, read at the start and written back at the end (time-chunked
    /// runs); `None`: the run starts from a zero membrane.
    pub membrane: Option<&'a mut [f32]>,
}

/// A raw pointer that tasks writing disjoint ranges may share.
#[derive(Clone, Copy)]
struct SharedMut(*mut f32);
// SAFETY: every task writes only the elements of its own block (see `simulate_dsr`).
unsafe impl Send for SharedMut {}
unsafe impl Sync for SharedMut {}

impl SharedMut {
    /// Through a method, so closures capture the wrapper (not the bare pointer field).
    fn at(self, offset: usize) -> *mut f32 {
        // SAFETY (of the callers): offsets stay inside the slice the pointer came from.
        self.0.wrapping_add(offset)
    }
}

/// Runs the neuron over all steps from a zero membrane; returns the number of spikes.
pub fn simulate_dsr(f: &DsrForward<'_>, o: DsrOutputs<'_>) -> Result<u64> {
    let n = o.mean_current.len();
    let bad = |arg: &str, msg: String| {
        Err(SnnError::Arg {
            arg: arg.to_string(),
            msg,
        })
    };
    if f.steps == 0 {
        return bad("steps", "must be >= 1".into());
    }
    let Some(total) = f.steps.checked_mul(n) else {
        return bad("steps", "steps * elements overflows".into());
    };
    let want_x = if f.static_input { n } else { total };
    if f.x.len() != want_x {
        return bad("x", format!("{} values, expected {want_x}", f.x.len()));
    }
    let (block, band, shrink) = match f.pool {
        None => (BLOCK, 1, 1),
        Some(p) => {
            let plane = p
                .channels
                .checked_mul(p.height)
                .and_then(|v| v.checked_mul(p.width));
            let band_ok =
                p.k.checked_mul(p.width)
                    .and_then(|v| v.checked_mul(p.channels))
                    .is_some();
            let fits = |plane: usize| {
                p.k > 0
                    && plane > 0
                    && band_ok
                    && p.height % p.k == 0
                    && p.width % p.k == 0
                    && n.is_multiple_of(plane)
            };
            if !plane.is_some_and(fits) {
                return bad(
                    "pool",
                    format!(
                        "a {k}x{k} pool needs H and W divisible by {k} and whole samples, got C={} H={} W={} for {n} values",
                        p.channels,
                        p.height,
                        p.width,
                        k = p.k
                    ),
                );
            }
            let band = p.band();
            (band * (BLOCK / band).max(1), band, p.k * p.k)
        }
    };
    if o.out.len() != total / shrink || o.mean_out.len() != n {
        return bad(
            "out",
            format!(
                "out has {} values and mean_out {}, expected {} and {n}",
                o.out.len(),
                o.mean_out.len(),
                total / shrink
            ),
        );
    }
    if f.accumulate.is_some() && f.current_weights.is_none() {
        return bad(
            "current_weights",
            "required when the means are accumulated".into(),
        );
    }
    if o.membrane.as_ref().is_some_and(|m| m.len() != n) {
        return bad(
            "membrane",
            format!(
                "expected {n} values, got {}",
                o.membrane.as_ref().map_or(0, |m| m.len())
            ),
        );
    }
    if let Some(w) = f.current_weights {
        if w.len() != f.steps {
            return bad(
                "current_weights",
                format!("{} weights for {} steps", w.len(), f.steps),
            );
        }
    }
    let out = SharedMut(o.out.as_mut_ptr());
    let membrane = o.membrane.map(|m| SharedMut(m.as_mut_ptr()));
    let steps_f = f.steps as f32;
    let pool = f.pool;
    let (n_out, area) = (n / shrink, shrink as f32);
    let count: u64 = o
        .mean_current
        .par_chunks_mut(block)
        .zip(o.mean_out.par_chunks_mut(block))
        .enumerate()
        .map(|(b, (cur, mo))| {
            let e0 = b * block;
            let len = cur.len();
            let mut v = vec![0.0f32; len];
            if let Some(m) = membrane {
                // SAFETY: as for `out` below, this block's own elements only.
                v.copy_from_slice(unsafe { std::slice::from_raw_parts(m.at(e0), len) });
            }
            let mut acc = vec![0.0f32; len];
            let mut full = vec![0.0f32; if pool.is_some() { len } else { 0 }];
            if f.accumulate.is_none() {
                if f.static_input {
                    cur.copy_from_slice(&f.x[e0..e0 + len]);
                } else {
                    cur.fill(0.0);
                }
            }
            let mut spikes = 0u64;
            for t in 0..f.steps {
                let xs = if f.static_input {
                    &f.x[e0..e0 + len]
                } else {
                    &f.x[t * n + e0..t * n + e0 + len]
                };
                // SAFETY: block `b` covers elements e0..e0+len of every step's slice (pooled:
                // its whole windows, e0/k^2 .. (e0+len)/k^2); blocks are disjoint and `out`
                // outlives the parallel loop.
                let os = unsafe {
                    std::slice::from_raw_parts_mut(out.at(t * n_out + e0 / shrink), len / shrink)
                };
                match &pool {
                    None => spikes += step_block(f.law, f.value, xs, &mut v, os, &mut acc),
                    Some(p) => {
                        spikes += step_block(f.law, f.value, xs, &mut v, &mut full, &mut acc);
                        pool_bands(p, &full, os, band, shrink, area);
                    }
                }
                if !f.static_input || f.accumulate.is_some() {
                    match f.current_weights {
                        Some(w) => cur.iter_mut().zip(xs).for_each(|(c, &x)| *c += w[t] * x),
                        None => cur.iter_mut().zip(xs).for_each(|(c, &x)| *c += x),
                    }
                }
            }
            if let Some(m) = membrane {
                // SAFETY: see above.
                unsafe { std::slice::from_raw_parts_mut(m.at(e0), len) }.copy_from_slice(&v);
            }
            match f.accumulate {
                Some(scale) => mo
                    .iter_mut()
                    .zip(acc.iter())
                    .for_each(|(m, &a)| *m += scale * a),
                None => {
                    if !f.static_input && f.current_weights.is_none() {
                        cur.iter_mut().for_each(|c| *c /= steps_f);
                    }
                    mo.iter_mut()
                        .zip(acc.iter())
                        .for_each(|(m, &a)| *m = a / steps_f);
                }
            }
            spikes
        })
        .sum();
    Ok(count)
}

dispatch! {
    /// One step for a block: integrate, fire, reset; adds the outputs to `acc` (AVX2 when the
    /// CPU has it: same IEEE operations, wider vectors).
    pub fn step_block[](law: DsrLaw, value: f32, xs: &[f32], v: &mut [f32], os: &mut [f32], acc: &mut [f32]) -> u64
        => step_block_impl
    where []
}

#[inline(always)]
fn step_block_impl(
    law: DsrLaw,
    value: f32,
    xs: &[f32],
    v: &mut [f32],
    os: &mut [f32],
    acc: &mut [f32],
) -> u64 {
    // The engine's float law (`crate::neurons`), element by element: the same IEEE operations
    // in the same order as the inference engine and the torch step functions.
    let mut spikes = 0u32;
    match law {
        DsrLaw::If { theta, fire } => {
            for (((&x, v), o), a) in xs
                .iter()
                .zip(v.iter_mut())
                .zip(os.iter_mut())
                .zip(acc.iter_mut())
            {
                let (s, _) = f32::if_elem(v, x, theta, fire);
                spikes += s as u32;
                let out = if s { value } else { 0.0 };
                *o = out;
                *a += out;
            }
        }
        DsrLaw::Lif {
            theta,
            fire,
            leak,
            gain,
        } => {
            for (((&x, v), o), a) in xs
                .iter()
                .zip(v.iter_mut())
                .zip(os.iter_mut())
                .zip(acc.iter_mut())
            {
                let (s, _) = f32::lif_elem(v, x, leak, gain, theta, fire, 0);
                spikes += s as u32;
                let out = if s { value } else { 0.0 };
                *o = out;
                *a += out;
            }
        }
    }
    spikes as u64
}

#[cfg(test)]
mod tests;

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

use rayon::prelude::*;

use crate::error::{Result, SnnError};

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

/// A non-overlapping average pool (`kernel == stride == k`, no padding) applied to the
/// outputs before they are written (a neuron layer followed by a pool), so the full-size
/// outputs are never stored. The layout of one step's slice: `[B, C, H, W]` (`channels_last:
/// false`) or `[B, H, W, C]`; `H` and `W` must be multiples of `k`. Each window is summed row by
/// row, then divided by `k*k` (the order of torch's `avg_pool2d`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pool {
    pub k: usize,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub channels_last: bool,
}

impl Pool {
    /// Elements of one band of `k` input rows (the unit a block is made of).
    fn band(&self) -> usize {
        self.k * self.width * if self.channels_last { self.channels } else { 1 }
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
                    && n % plane == 0
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

/// Average-pools whole bands of `full` into `pooled`: each window summed row by row (the
/// order of torch's `avg_pool2d`), then divided by `area = k*k`.
#[inline(always)]
fn pool_bands_impl(
    p: &Pool,
    full: &[f32],
    pooled: &mut [f32],
    band: usize,
    shrink: usize,
    area: f32,
) {
    let (k, w) = (p.k, p.width);
    pooled.fill(0.0);
    for (src, dst) in full
        .chunks_exact(band)
        .zip(pooled.chunks_exact_mut(band / shrink))
    {
        if p.channels_last {
            // band: [k rows][W][C] -> [W/k][C]; the inner loop runs over contiguous channels
            let c = p.channels;
            for row in src.chunks_exact(w * c) {
                for (j, d) in dst.chunks_exact_mut(c).enumerate() {
                    for dx in 0..k {
                        let s = &row[(j * k + dx) * c..(j * k + dx + 1) * c];
                        d.iter_mut().zip(s).for_each(|(a, &x)| *a += x);
                    }
                }
            }
        } else {
            // band: [k rows][W] -> [W/k]
            for row in src.chunks_exact(w) {
                for (d, win) in dst.iter_mut().zip(row.chunks_exact(k)) {
                    for &x in win {
                        *d += x;
                    }
                }
            }
        }
    }
    pooled.iter_mut().for_each(|q| *q /= area);
}

crate::kernels::dispatch! {
    /// One step for a block: integrate, fire, reset; adds the outputs to `acc` (AVX2 when the
    /// CPU has it: same IEEE operations, wider vectors).
    pub fn step_block[](law: DsrLaw, value: f32, xs: &[f32], v: &mut [f32], os: &mut [f32], acc: &mut [f32]) -> u64
        => step_block_impl, step_block_avx2
    where []
}

crate::kernels::dispatch! {
    /// [`pool_bands_impl`], AVX2 when available.
    pub fn pool_bands[](p: &Pool, full: &[f32], pooled: &mut [f32], band: usize, shrink: usize, area: f32)
        => pool_bands_impl, pool_bands_avx2
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
    let mut spikes = 0u32;
    match law {
        DsrLaw::If { theta, fire } => {
            for (((&x, v), o), a) in xs
                .iter()
                .zip(v.iter_mut())
                .zip(os.iter_mut())
                .zip(acc.iter_mut())
            {
                let u = *v + x;
                let s = u >= fire;
                spikes += s as u32;
                let out = if s { value } else { 0.0 };
                *o = out;
                *a += out;
                *v = if s { u - theta } else { u };
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
                let u = leak * *v + gain * x;
                let s = u >= fire;
                spikes += s as u32;
                let out = if s { value } else { 0.0 };
                *o = out;
                *a += out;
                *v = if s { u - theta } else { u };
            }
        }
    }
    spikes as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Run {
        out: Vec<f32>,
        cur: Vec<f32>,
        mean: Vec<f32>,
        spikes: u64,
    }

    fn run(x: &[f32], static_input: bool, steps: usize, law: DsrLaw, w: Option<&[f32]>) -> Run {
        let n = if static_input {
            x.len()
        } else {
            x.len() / steps
        };
        let (mut out, mut cur, mut mean) = (vec![0.0; steps * n], vec![0.0; n], vec![0.0; n]);
        let f = DsrForward {
            x,
            static_input,
            steps,
            law,
            value: 2.0,
            current_weights: w,
            accumulate: None,
            pool: None,
        };
        let o = DsrOutputs {
            out: &mut out,
            mean_current: &mut cur,
            mean_out: &mut mean,
            membrane: None,
        };
        let spikes = simulate_dsr(&f, o).unwrap();
        Run {
            out,
            cur,
            mean,
            spikes,
        }
    }

    fn ramp(len: usize) -> Vec<f32> {
        (0..len)
            .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 0.6)
            .collect()
    }

    /// The IF law by hand: constant current 0.4, theta 1, fire 0.5 (alpha 0.5).
    #[test]
    fn if_static_input_follows_the_law() {
        let r = run(
            &[0.4],
            true,
            4,
            DsrLaw::If {
                theta: 1.0,
                fire: 0.5,
            },
            None,
        );
        // U: 0.4 (no), 0.8 (fire, V=-0.2), 0.2 (no), 0.6 (fire)
        assert_eq!(r.out, vec![0.0, 2.0, 0.0, 2.0]);
        assert_eq!((r.cur, r.mean, r.spikes), (vec![0.4], vec![1.0], 2));
    }

    /// Many elements across blocks: each equals a scalar simulation of its own.
    #[test]
    fn blocks_match_a_scalar_loop() {
        let (steps, n) = (3, 2 * BLOCK + 37);
        let x = ramp(steps * n);
        let law = DsrLaw::Lif {
            theta: 0.6,
            fire: 0.3,
            leak: 0.9,
            gain: 0.1,
        };
        let w = [0.2, 0.3, 0.5];
        let r = run(&x, false, steps, law, Some(&w));
        let mut count = 0;
        for e in 0..n {
            let (mut v, mut acc, mut ic) = (0.0f32, 0.0f32, 0.0f32);
            for t in 0..steps {
                let xv = x[t * n + e];
                let u = 0.9f32 * v + 0.1f32 * xv;
                let s = u >= 0.3;
                let o = if s { 2.0 } else { 0.0 };
                assert_eq!(r.out[t * n + e], o);
                count += s as u64;
                acc += o;
                ic += w[t] * xv;
                v = if s { u - 0.6 } else { u };
            }
            assert_eq!(r.mean[e], acc / steps as f32);
            assert_eq!(r.cur[e], ic);
        }
        assert_eq!(r.spikes, count);
        // IF with the uniform mean: the sum over steps divided by their number
        let r = run(
            &x,
            false,
            steps,
            DsrLaw::If {
                theta: 1.0,
                fire: 0.5,
            },
            None,
        );
        assert_eq!(r.cur[5], (x[5] + x[n + 5] + x[2 * n + 5]) / 3.0);
    }

    /// Two chunks with the membrane carried over give the whole run's spikes and means.
    #[test]
    fn chunks_with_a_carried_membrane_equal_one_run() {
        let (steps, n) = (5, BLOCK + 3);
        let x = ramp(steps * n);
        let law = DsrLaw::If {
            theta: 1.0,
            fire: 0.5,
        };
        let w = [0.2f32; 5];
        let whole = run(&x, false, steps, law, Some(&w));
        let (mut out, mut cur, mut mean, mut v) = (
            vec![0.0; steps * n],
            vec![0.0; n],
            vec![0.0; n],
            vec![0.0; n],
        );
        let mut spikes = 0;
        for (t0, t1) in [(0, 2), (2, 5)] {
            let f = DsrForward {
                x: &x[t0 * n..t1 * n],
                static_input: false,
                steps: t1 - t0,
                law,
                value: 2.0,
                current_weights: Some(&w[t0..t1]),
                accumulate: Some(0.2),
                pool: None,
            };
            let o = DsrOutputs {
                out: &mut out[t0 * n..t1 * n],
                mean_current: &mut cur,
                mean_out: &mut mean,
                membrane: Some(&mut v),
            };
            spikes += simulate_dsr(&f, o).unwrap();
        }
        assert_eq!(out, whole.out);
        assert_eq!(spikes, whole.spikes);
        for e in 0..n {
            assert!((cur[e] - whole.cur[e]).abs() < 1e-6 && (mean[e] - whole.mean[e]).abs() < 1e-6);
        }
    }

    /// Pooling inside the kernel equals pooling the full outputs (both layouts, k = 2 and 3).
    #[test]
    fn pooled_outputs_equal_pooling_afterwards() {
        let (steps, b, c, h, w) = (3, 2, 3, 6, 12);
        let n = b * c * h * w;
        let x = ramp(steps * n);
        let law = DsrLaw::If {
            theta: 1.0,
            fire: 0.5,
        };
        let whole = run(&x, false, steps, law, None);
        for k in [2usize, 3] {
            for channels_last in [false, true] {
                let pool = Pool {
                    k,
                    channels: c,
                    height: h,
                    width: w,
                    channels_last,
                };
                let (ho, wo) = (h / k, w / k);
                let mut out = vec![0.0; steps * n / (k * k)];
                let (mut cur, mut mean) = (vec![0.0; n], vec![0.0; n]);
                let f = DsrForward {
                    x: &x,
                    static_input: false,
                    steps,
                    law,
                    value: 2.0,
                    current_weights: None,
                    accumulate: None,
                    pool: Some(pool),
                };
                let o = DsrOutputs {
                    out: &mut out,
                    mean_current: &mut cur,
                    mean_out: &mut mean,
                    membrane: None,
                };
                assert_eq!(simulate_dsr(&f, o).unwrap(), whole.spikes);
                assert_eq!((&cur, &mean), (&whole.cur, &whole.mean));
                let idx = |bb: usize, cc: usize, y: usize, xx: usize, hh: usize, ww: usize| {
                    if channels_last {
                        ((bb * hh + y) * ww + xx) * c + cc
                    } else {
                        ((bb * c + cc) * hh + y) * ww + xx
                    }
                };
                for t in 0..steps {
                    for (bb, cc, y, xx) in (0..b).flat_map(|bb| {
                        (0..c).flat_map(move |cc| {
                            (0..ho).flat_map(move |y| (0..wo).map(move |xx| (bb, cc, y, xx)))
                        })
                    }) {
                        let mut sum = 0.0f32;
                        for dy in 0..k {
                            for dx in 0..k {
                                sum +=
                                    whole.out[t * n + idx(bb, cc, y * k + dy, xx * k + dx, h, w)];
                            }
                        }
                        assert_eq!(
                            out[t * n / (k * k) + idx(bb, cc, y, xx, ho, wo)],
                            sum / (k * k) as f32
                        );
                    }
                }
            }
        }
        let bad = Pool {
            k: 4,
            channels: c,
            height: h,
            width: w,
            channels_last: false,
        };
        let (mut out, mut cur, mut mean) = (vec![0.0; steps * n], vec![0.0; n], vec![0.0; n]);
        let f = DsrForward {
            x: &x,
            static_input: false,
            steps,
            law,
            value: 2.0,
            current_weights: None,
            accumulate: None,
            pool: Some(bad),
        };
        let o = DsrOutputs {
            out: &mut out,
            mean_current: &mut cur,
            mean_out: &mut mean,
            membrane: None,
        };
        assert!(matches!(simulate_dsr(&f, o), Err(SnnError::Arg { arg, .. }) if arg == "pool"));
    }

    /// x, weights, accumulate, with a membrane, the argument the error names.
    type BadCase<'a> = (&'a [f32], Option<&'a [f32]>, Option<f32>, bool, &'a str);

    #[test]
    fn wrong_sizes_are_errors() {
        let law = DsrLaw::If {
            theta: 1.0,
            fire: 0.5,
        };
        let (mut out, mut cur, mut mean, mut v) =
            (vec![0.0; 4], vec![0.0; 2], vec![0.0; 2], vec![0.0; 3]);
        let cases: [BadCase; 4] = [
            (&[0.0; 3], None, None, false, "x"),
            (&[0.0; 4], Some(&[0.5; 3]), None, false, "current_weights"),
            (&[0.0; 4], None, Some(0.5), false, "current_weights"),
            (&[0.0; 4], None, None, true, "membrane"),
        ];
        for (x, w, accumulate, with_membrane, arg) in cases {
            let f = DsrForward {
                x,
                static_input: false,
                steps: 2,
                law,
                value: 1.0,
                current_weights: w,
                accumulate,
                pool: None,
            };
            let membrane = if with_membrane {
                Some(&mut v[..])
            } else {
                None
            };
            let o = DsrOutputs {
                out: &mut out,
                mean_current: &mut cur,
                mean_out: &mut mean,
                membrane,
            };
            match simulate_dsr(&f, o) {
                Err(SnnError::Arg { arg: a, .. }) => assert_eq!(a, arg),
                other => panic!("expected an error on {arg}, got {other:?}"),
            }
        }
    }
}

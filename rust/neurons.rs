//! The neuron updates of docs/model-format.md §2, per element for `f32` and `i32`, and the
//! loops that apply them to a whole node (written once, generic over the value type).
//!
//! Float: f32 operations in the stated order (Rust never fuses a product and a sum into an
//! FMA). Int: int64 intermediates, fixed-point `fx`, and every new value checked against the
//! int32 range.

use crate::kernels::simd::dispatch;
use crate::numeric::{fx, Value};

/// Per-element neuron equations. Each returns `(spike, overflow)`; float never overflows.
pub(crate) trait NeuronMath: Value {
    /// `dsr_if`: `U = V + x; s = U >= fire; V = U - theta*s`.
    fn if_elem(v: &mut Self, x: Self, theta: Self, fire: Self) -> (bool, bool);
    /// `dsr_lif`: `U = leak*V + gain*x` (int: `fx(leak_m, V, f) + fx(gain_m, x, f)`);
    /// `s = U >= fire; V = U - theta*s`.
    fn lif_elem(
        v: &mut Self,
        x: Self,
        leak: Self,
        gain: Self,
        theta: Self,
        fire: Self,
        f: u32,
    ) -> (bool, bool);
    /// `dspike_lif`: `U = leak*V + x` (int: `fx(leak_m, V, f) + x`); `s = U > fire`;
    /// `V = 0 if s else U`.
    fn dspike_elem(v: &mut Self, x: Self, leak: Self, fire: Self, f: u32) -> (bool, bool);
    /// `integrate`: `V = V + x`; returns overflow.
    fn integrate_elem(v: &mut Self, x: Self) -> bool;
    /// Leaky `integrate`: `V = leak*V + x` (int: `fx(leak_m, V, f) + x`); returns overflow.
    fn leaky_integrate_elem(v: &mut Self, x: Self, leak: Self, f: u32) -> bool;
}

impl NeuronMath for f32 {
    #[inline(always)]
    fn if_elem(v: &mut f32, x: f32, theta: f32, fire: f32) -> (bool, bool) {
        let u = *v + x;
        let s = u >= fire;
        // U - theta*s: for s = 0 this is U - 0 = U exactly.
        *v = if s { u - theta } else { u };
        (s, false)
    }
    #[inline(always)]
    fn lif_elem(
        v: &mut f32,
        x: f32,
        leak: f32,
        gain: f32,
        theta: f32,
        fire: f32,
        _f: u32,
    ) -> (bool, bool) {
        let a = leak * *v;
        let b = gain * x;
        let u = a + b;
        let s = u >= fire;
        *v = if s { u - theta } else { u };
        (s, false)
    }
    #[inline(always)]
    fn dspike_elem(v: &mut f32, x: f32, leak: f32, fire: f32, _f: u32) -> (bool, bool) {
        let u = leak * *v + x;
        let s = u > fire;
        *v = if s { 0.0 } else { u };
        (s, false)
    }
    #[inline(always)]
    fn integrate_elem(v: &mut f32, x: f32) -> bool {
        *v += x;
        false
    }
    #[inline(always)]
    fn leaky_integrate_elem(v: &mut f32, x: f32, leak: f32, _f: u32) -> bool {
        let a = leak * *v;
        *v = a + x;
        false
    }
}

/// `a + b` wrapped, and whether it overflowed; written with plain i32 operations (the sign
/// rule: overflow iff the result's sign differs from both operands') so that loops vectorise.
#[inline(always)]
fn add_i32(a: i32, b: i32) -> (i32, bool) {
    let u = a.wrapping_add(b);
    (u, ((a ^ u) & (b ^ u)) < 0)
}

#[inline(always)]
fn out_of_i32(v: i64) -> bool {
    v != (v as i32) as i64
}

impl NeuronMath for i32 {
    #[inline(always)]
    fn if_elem(v: &mut i32, x: i32, theta: i32, fire: i32) -> (bool, bool) {
        let (u, o) = add_i32(*v, x);
        let s = u >= fire;
        // The reset cannot overflow: s implies u >= fire >= 1 and theta >= 1 (validated), so
        // u - theta >= 1 - i32::MAX. (On overflow `o` is reported and the state discarded.)
        *v = if s { u.wrapping_sub(theta) } else { u };
        (s, o)
    }
    #[inline(always)]
    fn lif_elem(
        v: &mut i32,
        x: i32,
        leak: i32,
        gain: i32,
        theta: i32,
        fire: i32,
        f: u32,
    ) -> (bool, bool) {
        let u = fx(leak as i64, *v as i64, f) + fx(gain as i64, x as i64, f);
        let s = u >= fire as i64;
        let nv = if s { u - theta as i64 } else { u };
        *v = nv as i32;
        (s, out_of_i32(u) | out_of_i32(nv))
    }
    #[inline(always)]
    fn dspike_elem(v: &mut i32, x: i32, leak: i32, fire: i32, f: u32) -> (bool, bool) {
        let u = fx(leak as i64, *v as i64, f) + x as i64;
        let s = u > fire as i64;
        let nv = if s { 0 } else { u };
        *v = nv as i32;
        (s, out_of_i32(u))
    }
    #[inline(always)]
    fn integrate_elem(v: &mut i32, x: i32) -> bool {
        let (u, o) = add_i32(*v, x);
        *v = u;
        o
    }
    #[inline(always)]
    fn leaky_integrate_elem(v: &mut i32, x: i32, leak: i32, f: u32) -> bool {
        let u = fx(leak as i64, *v as i64, f) + x as i64;
        *v = u as i32;
        out_of_i32(u)
    }
}

/// Which neuron a node runs, with its per-channel parameters expanded to one period
/// (`period` = channels for `[C, H, W]` values in channels-last layout, features for `[F]`).
#[derive(Debug, Clone)]
pub(crate) enum NeuronParams<V> {
    If {
        theta: Vec<V>,
        fire: Vec<V>,
    },
    Lif {
        theta: Vec<V>,
        fire: Vec<V>,
        leak: Vec<V>,
        gain: Vec<V>,
        f: u32,
    },
    Dspike {
        fire: Vec<V>,
        leak: Vec<V>,
        f: u32,
    },
    Integrate,
    /// `integrate` with a leak (`leak_m` with `f` in int precision).
    LeakyIntegrate {
        leak: Vec<V>,
        f: u32,
    },
}

/// The loops run over `period`-long chunks, so the parameter slices are walked in lockstep
/// with contiguous state and input slices and vectorise.
#[inline(always)]
fn step_impl<V: NeuronMath>(
    p: &NeuronParams<V>,
    period: usize,
    v: &mut [V],
    x: &[V],
    out: &mut [V],
) -> bool {
    let mut bad = false;
    match p {
        NeuronParams::If { theta, fire } => {
            for ((vc, xc), oc) in v
                .chunks_exact_mut(period)
                .zip(x.chunks_exact(period))
                .zip(out.chunks_exact_mut(period))
            {
                for ((((vv, &xx), o), &th), &fi) in vc
                    .iter_mut()
                    .zip(xc)
                    .zip(oc.iter_mut())
                    .zip(theta)
                    .zip(fire)
                {
                    let (s, b) = V::if_elem(vv, xx, th, fi);
                    *o = if s { V::ONE } else { V::ZERO };
                    bad |= b;
                }
            }
        }
        NeuronParams::Lif {
            theta,
            fire,
            leak,
            gain,
            f,
        } => {
            let f = *f;
            for ((vc, xc), oc) in v
                .chunks_exact_mut(period)
                .zip(x.chunks_exact(period))
                .zip(out.chunks_exact_mut(period))
            {
                for ((((((vv, &xx), o), &th), &fi), &lk), &gn) in vc
                    .iter_mut()
                    .zip(xc)
                    .zip(oc.iter_mut())
                    .zip(theta)
                    .zip(fire)
                    .zip(leak)
                    .zip(gain)
                {
                    let (s, b) = V::lif_elem(vv, xx, lk, gn, th, fi, f);
                    *o = if s { V::ONE } else { V::ZERO };
                    bad |= b;
                }
            }
        }
        NeuronParams::Dspike { fire, leak, f } => {
            let f = *f;
            for ((vc, xc), oc) in v
                .chunks_exact_mut(period)
                .zip(x.chunks_exact(period))
                .zip(out.chunks_exact_mut(period))
            {
                for ((((vv, &xx), o), &fi), &lk) in
                    vc.iter_mut().zip(xc).zip(oc.iter_mut()).zip(fire).zip(leak)
                {
                    let (s, b) = V::dspike_elem(vv, xx, lk, fi, f);
                    *o = if s { V::ONE } else { V::ZERO };
                    bad |= b;
                }
            }
        }
        NeuronParams::Integrate => {
            for (vv, &xx) in v.iter_mut().zip(x) {
                bad |= V::integrate_elem(vv, xx);
            }
        }
        NeuronParams::LeakyIntegrate { leak, f } => {
            let f = *f;
            for (vc, xc) in v.chunks_exact_mut(period).zip(x.chunks_exact(period)) {
                for ((vv, &xx), &lk) in vc.iter_mut().zip(xc).zip(leak) {
                    bad |= V::leaky_integrate_elem(vv, xx, lk, f);
                }
            }
        }
    }
    !bad
}

dispatch! {
    /// One step of a neuron node over all its elements: updates the membranes `v` with input
    /// `x`, writes the spikes (0/1) to `out` (spiking neurons only). Returns `false` on int
    /// overflow.
    pub fn step[V](p: &NeuronParams<V>, period: usize, v: &mut [V], x: &[V], out: &mut [V]) -> bool
        => step_impl
    where [V: NeuronMath]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dsr_if_float_fires_at_level_and_subtracts_theta() {
        let mut v = 0.0f32;
        // tie at the fire level fires (>=)
        assert_eq!(f32::if_elem(&mut v, 0.5, 1.0, 0.5), (true, false));
        assert_eq!(v, -0.5);
        assert_eq!(f32::if_elem(&mut v, 0.25, 1.0, 0.5), (false, false));
        assert_eq!(v, -0.25);
    }

    #[test]
    fn dsr_if_int_tie_and_overflow() {
        let mut v = 0i32;
        assert_eq!(i32::if_elem(&mut v, 3, 6, 3), (true, false));
        assert_eq!(v, -3);
        assert_eq!(i32::if_elem(&mut v, 5, 6, 3), (false, false));
        assert_eq!(v, 2);
        let mut v = i32::MAX - 1;
        let (_, bad) = i32::if_elem(&mut v, 5, i32::MAX, i32::MAX);
        assert!(bad, "V + x beyond int32 must be reported");
        let mut v = i32::MIN + 1;
        let (_, bad) = i32::if_elem(&mut v, -5, 10, 5);
        assert!(bad);
    }

    #[test]
    fn dsr_lif_float_and_int() {
        let mut v = 2.0f32;
        // U = 0.5*2 + 0.25*4 = 2 ; fire 2 -> spike, V = 2 - 3 = -1
        assert_eq!(
            f32::lif_elem(&mut v, 4.0, 0.5, 0.25, 3.0, 2.0, 0),
            (true, false)
        );
        assert_eq!(v, -1.0);
        // int: leak_m = 3 (f=2 -> 0.75), gain_m = 1 (0.25)
        let mut v = 10i32; // fx(3,10,2) = (30+2)>>2 = 8 ; fx(1, 7, 2) = (7+2)>>2 = 2 -> U = 10
        assert_eq!(i32::lif_elem(&mut v, 7, 3, 1, 6, 10, 2), (true, false));
        assert_eq!(v, 4);
        let mut v = -10i32; // fx(3,-10,2) = (-30+2)>>2 = -7 ; fx(1,-7,2) = (-5)>>2 = -2 -> -9
        assert_eq!(i32::lif_elem(&mut v, -7, 3, 1, 6, 10, 2), (false, false));
        assert_eq!(v, -9);
        let mut v = i32::MAX;
        let (_, bad) = i32::lif_elem(&mut v, i32::MAX, 1 << 20, 1 << 20, 1, 1, 20);
        assert!(bad);
    }

    #[test]
    fn dspike_strict_and_hard_reset() {
        let mut v = 0.0f32;
        // tie at the fire level does not fire (strict >)
        assert_eq!(f32::dspike_elem(&mut v, 0.5, 0.5, 0.5, 0), (false, false));
        assert_eq!(v, 0.5);
        // U = 0.25 + 0.5 = 0.75 > 0.5 -> spike, V = 0
        assert_eq!(f32::dspike_elem(&mut v, 0.5, 0.5, 0.5, 0), (true, false));
        assert_eq!(v, 0.0);
        let mut v = 0i32;
        assert_eq!(i32::dspike_elem(&mut v, 4, 2, 4, 2), (false, false));
        assert_eq!(v, 4);
        // fx(2, 4, 2) = (8+2)>>2 = 2 ; U = 2 + 3 = 5 > 4
        assert_eq!(i32::dspike_elem(&mut v, 3, 2, 4, 2), (true, false));
        assert_eq!(v, 0);
    }

    #[test]
    fn add_i32_overflow_rule() {
        for &(a, b) in &[
            (1, 2),
            (i32::MAX, 1),
            (i32::MIN, -1),
            (i32::MAX, -1),
            (i32::MIN, 0),
            (-5, i32::MIN),
            (i32::MAX, i32::MAX),
        ] {
            let (u, o) = add_i32(a, b);
            assert_eq!((u, o), a.overflowing_add(b), "{a} + {b}");
        }
    }

    #[test]
    fn integrate_overflow() {
        let mut v = 5i32;
        assert!(!i32::integrate_elem(&mut v, -7));
        assert_eq!(v, -2);
        let mut v = i32::MAX;
        assert!(i32::integrate_elem(&mut v, 1));
    }

    #[test]
    fn leaky_integrate_float_and_int() {
        let mut v = 2.0f32;
        assert!(!f32::leaky_integrate_elem(&mut v, 1.0, 0.5, 0));
        assert_eq!(v, 2.0);
        // fx(3, 10, 2) = (30 + 2) >> 2 = 8 ; + 5
        let mut v = 10i32;
        assert!(!i32::leaky_integrate_elem(&mut v, 5, 3, 2));
        assert_eq!(v, 13);
        // fx(3, -10, 2) = (-30 + 2) >> 2 = -7 (floor) ; + 0
        let mut v = -10i32;
        assert!(!i32::leaky_integrate_elem(&mut v, 0, 3, 2));
        assert_eq!(v, -7);
        let mut v = i32::MAX;
        assert!(i32::leaky_integrate_elem(&mut v, 1, 1 << 2, 2));
        // per-channel leak over a channels-last value: 2 channels, 2 positions
        let p = NeuronParams::LeakyIntegrate {
            leak: vec![0.5f32, 1.0],
            f: 0,
        };
        let mut v = vec![4.0f32, 4.0, 2.0, 2.0];
        assert!(step(&p, 2, &mut v, &[1.0, 1.0, 0.0, 0.0], &mut []));
        assert_eq!(v, vec![3.0, 5.0, 1.0, 2.0]);
    }

    #[test]
    fn step_over_channels() {
        // 2 channels, 3 positions (channels-last), per-channel thresholds
        let p = NeuronParams::If {
            theta: vec![1.0f32, 2.0],
            fire: vec![0.5, 1.0],
        };
        let mut v = vec![0.0f32; 6];
        let x = vec![0.5, 0.5, 0.4, 1.0, 0.0, 2.0];
        let mut out = vec![0.0; 6];
        assert!(step(&p, 2, &mut v, &x, &mut out));
        assert_eq!(out, vec![1.0, 0.0, 0.0, 1.0, 0.0, 1.0]);
        assert_eq!(v, vec![-0.5, 0.5, 0.4, -1.0, 0.0, 0.0]);
    }
}

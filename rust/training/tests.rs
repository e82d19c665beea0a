//! Tests of the fused training forward against the step functions and torch's pooling order.

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
                            sum += whole.out[t * n + idx(bb, cc, y * k + dy, xx * k + dx, h, w)];
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

#[test]
fn law_names_and_constants_are_validated_in_the_core() {
    assert_eq!(
        DsrLaw::new("if", 1.0, 0.5, None, None).unwrap(),
        DsrLaw::If {
            theta: 1.0,
            fire: 0.5
        }
    );
    assert!(DsrLaw::new("lif", 1.0, 0.5, Some(0.9), Some(1.0)).is_ok());
    for (kind, leak, gain) in [
        ("if", Some(0.9), None),
        ("lif", Some(0.9), None),
        ("lif", None, Some(1.0)),
        ("relu", None, None),
    ] {
        let e = DsrLaw::new(kind, 1.0, 0.5, leak, gain).unwrap_err();
        assert!(e.to_string().contains("'kind'"), "{e}");
    }
}

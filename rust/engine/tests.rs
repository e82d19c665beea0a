//! Network-level tests of the engine against the independent reference in `testutil`.

#![allow(clippy::needless_range_loop)]

use super::*;
use crate::engine::bin_events;
use crate::engine::model::*;
use crate::engine::result::*;
use crate::events::{Binning, EventBatch, Events};
use crate::testutil::{reference, NetBuilder, Rng};

/// Runs an int static input `x` (`n_in` values per sample) and checks every sample against the
/// reference (spikes of every spiking node, counts, output sums).
fn run_static_checked(
    nb: &NetBuilder,
    m: &Model,
    x: &[i32],
    n_in: usize,
    steps: usize,
) -> RunResult {
    let r = m
        .run_static(Data::I32(x), steps, &spiking_names(nb), None)
        .unwrap();
    for (b, xb) in x.chunks(n_in).enumerate() {
        let xi: Vec<i64> = xb.iter().map(|&v| v as i64).collect();
        let refo = reference(nb, &[xi], steps);
        check_against_reference(nb, &r, b, &refo);
    }
    r
}

fn res_counts(r: &RunResult, b: usize) -> [Vec<Vec<u64>>; 5] {
    let (l, t) = (r.n_nodes, r.steps);
    let get = |v: &Vec<u64>| -> Vec<Vec<u64>> {
        (0..l)
            .map(|i| v[(b * l + i) * t..(b * l + i + 1) * t].to_vec())
            .collect()
    };
    let c = &r.counts;
    [
        get(&c.spikes),
        get(&c.sops),
        get(&c.macs),
        get(&c.aux_ops),
        get(&c.state_updates),
    ]
}

/// Compares an engine result (sample b) with the reference: spikes of every spiking node,
/// all counts, output sums.
fn check_against_reference(
    nb: &NetBuilder,
    r: &RunResult,
    b: usize,
    refo: &crate::testutil::RefOut,
) {
    let names: Vec<&str> = nb.nodes.iter().map(|n| n.name.as_str()).collect();
    let counts = res_counts(r, b);
    let what = ["spikes", "sops", "macs", "aux_ops", "state_updates"];
    for (k, w) in what.iter().enumerate() {
        for (i, name) in names.iter().enumerate() {
            assert_eq!(
                counts[k][i], refo.counts[k][i],
                "{w} of node {name}, sample {b}"
            );
        }
    }
    for rec in &r.record {
        let i = names.iter().position(|n| *n == rec.name).unwrap();
        let per: usize = rec.shape.iter().product();
        for t in 0..r.steps {
            let got = &rec.data[(b * r.steps + t) * per..(b * r.steps + t + 1) * per];
            assert_eq!(
                got,
                refo.spikes[i][t].as_slice(),
                "spikes of {} at step {t}, sample {b}",
                rec.name
            );
        }
    }
    let n = r.n_out;
    let got: Vec<i64> = r.output_sum[b * n..(b + 1) * n]
        .iter()
        .map(|&v| v as i64)
        .collect();
    assert_eq!(got, refo.output_sum, "output_sum, sample {b}");
    for k in 0..n {
        assert_eq!(
            r.output[b * n + k],
            r.output_sum[b * n + k] / r.steps as f64
        );
    }
}

fn spiking_names(nb: &NetBuilder) -> Vec<String> {
    nb.nodes
        .iter()
        .filter(|n| {
            matches!(
                n.op,
                crate::testutil::ROp::If { .. }
                    | crate::testutil::ROp::Lif { .. }
                    | crate::testutil::ROp::Dspike { .. }
            )
        })
        .map(|n| n.name.clone())
        .collect()
}

/// A conv network using every op. `int`: integer precision (LIF/dspike included).
fn conv_net(rng: &mut Rng, int: bool, c_in: usize, kind: &'static str) -> NetBuilder {
    let mut nb = NetBuilder::new(int, &[c_in, 7, 6], kind);
    let co = 4;
    let w = rng.ints(co * c_in * 9, -3, 4);
    nb.conv(
        "c1",
        "input",
        co,
        [3, 3],
        [1, 1],
        [1, 1],
        w,
        Some(rng.ints(co, -2, 2)),
    );
    nb.dsr_if("n1", "c1", rng.ints(co, 4, 8), rng.ints(co, 2, 4));
    if int {
        nb.pool("p1", "n1", true, [2, 2], [2, 2], 3, 2); // 0.75 * sum
    } else {
        nb.pool("p1", "n1", false, [2, 2], [2, 2], 0, 0);
    }
    nb.conv(
        "c2",
        "p1",
        3,
        [2, 2],
        [1, 1],
        [0, 0],
        rng.ints(3 * co * 4, -2, 3),
        None,
    );
    if int {
        nb.dsr_lif("n2", "c2", vec![5], vec![3], vec![3], vec![4], 2);
    } else {
        nb.dsr_if("n2", "c2", vec![5], vec![3]);
    }
    nb.flatten("f2", "n2");
    let n_f = nb.shape_of("f2")[0]; // 3 * 2 * 2
    nb.linear("fc_skip", "f2", n_f, rng.ints(n_f * n_f, -1, 2), None);
    nb.add("a1", &["f2", "fc_skip"]);
    nb.scale(
        "s1",
        "a1",
        rng.ints(n_f, 1, 3),
        Some(rng.ints(n_f, -1, 1)),
        1,
    );
    if int {
        nb.dspike("n3", "s1", rng.ints(n_f, 1, 3), vec![2], 2);
    } else {
        nb.dsr_if("n3", "s1", rng.ints(n_f, 2, 3), vec![1]);
    }
    nb.linear(
        "fc3",
        "n3",
        5,
        rng.ints(5 * n_f, -2, 3),
        Some(rng.ints(5, -1, 1)),
    );
    nb.dsr_if("n4", "fc3", vec![3], vec![2]);
    nb.linear("fc4", "n4", 3, rng.ints(15, -3, 3), None);
    nb.integrate("out", "fc4");
    nb
}

/// Total spikes per spiking node of a result (all samples, steps).
fn spike_totals(r: &RunResult) -> Vec<u64> {
    let (l, t) = (r.n_nodes, r.steps);
    (0..l)
        .map(|i| {
            (0..r.batch)
                .map(|b| {
                    r.counts.spikes[(b * l + i) * t..(b * l + i + 1) * t]
                        .iter()
                        .sum::<u64>()
                })
                .sum()
        })
        .collect()
}

#[test]
fn int_conv_network_static_input_matches_reference() {
    let mut active = vec![0u64; 14];
    for seed in 0..6 {
        let mut rng = Rng::new(seed);
        let c_in = 1 + (seed as usize % 2);
        let nb = conv_net(&mut rng, true, c_in, "static");
        let mut m = nb.model();
        m.set_chunk([1, 2, 4, 32][seed as usize % 4]);
        let n_in = c_in * 42;
        let batch = 3;
        let x: Vec<i32> = (0..batch * n_in)
            .map(|_| {
                if rng.next().is_multiple_of(3) {
                    0
                } else {
                    rng.int(-128, 127) as i32 / 16
                }
            })
            .collect();
        let steps = 6;
        let r = run_static_checked(&nb, &m, &x, n_in, steps);
        for (a, s) in active.iter_mut().zip(spike_totals(&r)) {
            *a += s;
        }
    }
    // every spiking node (n1, n2, n3, n4) fired somewhere: the comparison is not vacuous
    for i in [1usize, 4, 9, 11] {
        assert!(active[i] > 0, "node {i} never fired: {active:?}");
    }
}

#[test]
fn int_and_float_conv_network_frames_match_reference() {
    for seed in 0..6 {
        for int in [true, false] {
            let mut rng = Rng::new(100 + seed);
            let c_in = 1 + (seed as usize % 2);
            let nb = conv_net(&mut rng, int, c_in, "events");
            let mut m = nb.model();
            m.set_chunk([3, 1, 32, 2][seed as usize % 4]);
            let n_in = c_in * 42;
            let (batch, steps) = (2, 5);
            let fr: Vec<i64> = (0..batch * steps * n_in)
                .map(|_| {
                    if rng.next().is_multiple_of(4) {
                        rng.int(1, 2)
                    } else {
                        0
                    }
                })
                .collect();
            let r = if int {
                let v: Vec<i32> = fr.iter().map(|&x| x as i32).collect();
                m.run_frames(Data::I32(&v), batch, steps, &spiking_names(&nb), Some(2))
            } else {
                let v: Vec<f32> = fr.iter().map(|&x| x as f32).collect();
                m.run_frames(Data::F32(&v), batch, steps, &spiking_names(&nb), Some(2))
            }
            .unwrap();
            for b in 0..batch {
                let ins: Vec<Vec<i64>> = (0..steps)
                    .map(|t| fr[(b * steps + t) * n_in..(b * steps + t + 1) * n_in].to_vec())
                    .collect();
                let refo = reference(&nb, &ins, steps);
                check_against_reference(&nb, &r, b, &refo);
            }
        }
    }
}

#[test]
fn float_flatten_permutation_matches_chw_flatten() {
    // conv (3 channels) -> flatten -> linear -> integrate with non-integer weights: the engine
    // keeps HWC order and permutes the linear's columns; compare with a naive CHW computation.
    let mut rng = Rng::new(5);
    let (c, h, w, co) = (2usize, 5usize, 4usize, 3usize);
    let mut nb = NetBuilder::new(false, &[c, h, w], "static");
    nb.conv(
        "c1",
        "input",
        co,
        [3, 3],
        [1, 1],
        [1, 1],
        rng.ints(co * c * 9, -3, 3),
        None,
    );
    nb.flatten("f", "c1");
    nb.linear("fc", "f", 4, rng.ints(4 * co * h * w, -5, 5), None);
    nb.integrate("out", "fc");
    // replace the integer weights of fc by non-integer floats in the file
    let (g, mut tensors) = nb.parts();
    let fc_w: Vec<f32> = (0..4 * co * h * w).map(|_| rng.uniform() - 0.5).collect();
    for (name, t) in tensors.iter_mut() {
        if name == "fc.weight" {
            t.data = crate::format::TensorData::F32(fc_w.clone());
        }
    }
    let bytes = crate::format::write_bytes(&g.to_string(), &tensors).unwrap();
    let m = Model::from_bytes(&bytes).unwrap();
    let x: Vec<f32> = (0..c * h * w).map(|_| rng.int(-3, 3) as f32).collect();
    let r = m.run_static(Data::F32(&x), 1, &[], Some(1)).unwrap();
    // naive: conv in torch layout (integers: exact), flatten CHW, linear in f64
    let xi: Vec<i64> = x.iter().map(|&v| v as i64).collect();
    let mut nb2 = nb.clone();
    nb2.nodes.truncate(1);
    nb2.integrate("o", "c1");
    let conv_out = reference(&nb2, &[xi], 1).output_sum; // [co, h, w] flattened CHW
    for o in 0..4 {
        let want: f64 = (0..co * h * w)
            .map(|k| fc_w[o * co * h * w + k] as f64 * conv_out[k] as f64)
            .sum();
        assert!(
            (r.output_sum[o] - want).abs() < 1e-3,
            "out {o}: {} vs {want}",
            r.output_sum[o]
        );
    }
}

#[test]
fn stream_in_chunks_equals_one_shot() {
    for int in [false, true] {
        let mut rng = Rng::new(77);
        let nb = conv_net(&mut rng, int, 2, "events");
        let mut m = nb.model();
        m.set_chunk(if int { 2 } else { 4 });
        let n_in = 2 * 42;
        let steps = 9;
        let fr: Vec<i64> = (0..steps * n_in)
            .map(|_| if rng.next().is_multiple_of(3) { 1 } else { 0 })
            .collect();
        let rec = spiking_names(&nb);
        let conv = |v: &[i64]| -> (Vec<f32>, Vec<i32>) {
            (
                v.iter().map(|&x| x as f32).collect(),
                v.iter().map(|&x| x as i32).collect(),
            )
        };
        let (ff, fi) = conv(&fr);
        let data = |a: usize, b: usize| {
            if int {
                Data::I32(&fi[a * n_in..b * n_in])
            } else {
                Data::F32(&ff[a * n_in..b * n_in])
            }
        };
        let one = m.run_frames(data(0, steps), 1, steps, &rec, None).unwrap();
        let mut st = m.new_stream();
        let mut parts = Vec::new();
        for (a, b) in [(0, 2), (2, 3), (3, 7), (7, 9)] {
            parts.push(st.feed_frames(data(a, b), &rec).unwrap());
        }
        assert_eq!(st.steps_done(), steps);
        let last = parts.last().unwrap();
        assert_eq!(last.output_sum, one.output_sum);
        assert_eq!(last.output, one.output);
        assert_eq!(last.prediction, one.prediction);
        // counts and record concatenated over the chunks
        let l = one.n_nodes;
        for i in 0..l {
            let mut t0 = 0;
            for p in &parts {
                for t in 0..p.steps {
                    assert_eq!(
                        p.counts.spikes[i * p.steps + t],
                        one.counts.spikes[i * steps + t0 + t]
                    );
                    assert_eq!(
                        p.counts.sops[i * p.steps + t],
                        one.counts.sops[i * steps + t0 + t]
                    );
                    assert_eq!(
                        p.counts.aux_ops[i * p.steps + t],
                        one.counts.aux_ops[i * steps + t0 + t]
                    );
                    assert_eq!(
                        p.counts.macs[i * p.steps + t],
                        one.counts.macs[i * steps + t0 + t]
                    );
                }
                t0 += p.steps;
            }
        }
        for (ri, rec1) in one.record.iter().enumerate() {
            let per: usize = rec1.shape.iter().product();
            let mut cat = Vec::new();
            for p in &parts {
                cat.extend_from_slice(&p.record[ri].data);
            }
            assert_eq!(cat.len(), steps * per);
            assert_eq!(cat, rec1.data);
        }
    }
}

#[test]
fn events_runs_equal_frames_of_binned_events() {
    let mut rng = Rng::new(9);
    let nb = conv_net(&mut rng, false, 2, "events");
    let m = nb.model();
    // two samples of events on a [2, 7, 6] sensor
    let mut x = Vec::new();
    let mut y = Vec::new();
    let mut p = Vec::new();
    let mut t = Vec::new();
    let mut offsets = vec![0i64];
    for _b in 0..2 {
        let e = rng.int(5, 60) as usize;
        let mut tt = 1000i64;
        for _ in 0..e {
            x.push(rng.int(0, 5));
            y.push(rng.int(0, 6));
            p.push(rng.int(0, 1));
            tt += rng.int(0, 40);
            t.push(tt);
        }
        offsets.push(x.len() as i64);
    }
    let ev = EventBatch {
        x: &x,
        y: &y,
        p: &p,
        t: &t,
        offsets: &offsets,
    };
    let rec = spiking_names(&nb);
    for binning in [Binning::Time, Binning::Count] {
        let steps = 7;
        let r = m.run_events(&ev, steps, binning, &rec, None).unwrap();
        let frames = bin_events(&ev, [2, 7, 6], steps, binning).unwrap();
        let ff: Vec<f32> = frames.iter().map(|&v| v as f32).collect();
        let r2 = m.run_frames(Data::F32(&ff), 2, steps, &rec, None).unwrap();
        assert_eq!(r, r2);
        // the first conv sees sparse input: SOPs, no MACs
        assert!(r.counts.sops[0..steps].iter().sum::<u64>() > 0);
        assert_eq!(r.counts.macs[0..steps].iter().sum::<u64>(), 0);
    }
    // stream with fixed windows == run_frames of the same windows
    let s0 = ev.sample(0);
    let dt = 50;
    let origin = 1000;
    let n_win = ((s0.t.last().unwrap() - origin) / dt + 1) as usize;
    let mut st = m.new_stream();
    let half =
        s0.t.iter()
            .position(|&tt| tt >= origin + 2 * dt)
            .unwrap_or(s0.t.len());
    let a = Events {
        x: &s0.x[..half],
        y: &s0.y[..half],
        p: &s0.p[..half],
        t: &s0.t[..half],
    };
    let b = Events {
        x: &s0.x[half..],
        y: &s0.y[half..],
        p: &s0.p[half..],
        t: &s0.t[half..],
    };
    st.feed_events(&a, origin, dt, 2, &[]).unwrap();
    let last = st
        .feed_events(&b, origin, dt, n_win.max(2) - 2 + 1, &[])
        .unwrap();
    // frames by hand
    let total = n_win.max(2) + 1;
    let mut fr = vec![0f32; total * 84];
    for i in 0..s0.x.len() {
        let j = ((s0.t[i] - origin) / dt) as usize;
        fr[j * 84 + (s0.p[i] as usize * 7 + s0.y[i] as usize) * 6 + s0.x[i] as usize] += 1.0;
    }
    let one = m.run_frames(Data::F32(&fr), 1, total, &[], None).unwrap();
    assert_eq!(last.output_sum, one.output_sum);
    // an event outside the windows is an error
    assert!(st.feed_events(&a, origin, dt, 1, &[]).is_err());
}

#[test]
fn if_law_is_exact_in_int_mode() {
    // constant input I* to an IF neuron: count = clamp(floor(N*I/theta + 1 - alpha), 0, N)
    // with alpha = fire/theta, i.e. floor((N*I + theta - fire) / theta).
    let currents: Vec<i64> = (-20..=40).collect();
    let n_f = currents.len();
    for &(theta, fire) in &[(6i64, 3i64), (6, 6), (7, 4), (10, 5), (1, 1), (9, 2)] {
        let mut nb = NetBuilder::new(true, &[n_f], "static");
        let mut w = vec![0i64; n_f * n_f];
        for k in 0..n_f {
            w[k * n_f + k] = 1;
        }
        nb.linear("fc", "input", n_f, w, Some(currents.clone()));
        nb.dsr_if("n", "fc", vec![theta], vec![fire]);
        let m = nb.model();
        let x = vec![0i32; n_f];
        for steps in [1usize, 2, 5, 20, 33] {
            let r = m.run_static(Data::I32(&x), steps, &[], Some(1)).unwrap();
            for (k, &i) in currents.iter().enumerate() {
                let nn = steps as i64;
                let law = (nn * i + theta - fire).div_euclid(theta).clamp(0, nn);
                assert_eq!(
                    r.output_sum[k] as i64, law,
                    "I={i} theta={theta} fire={fire} N={steps}"
                );
            }
            // static first layer: MACs once, at step 0
            assert_eq!(r.counts.macs[0], (n_f * n_f) as u64);
            assert!(r.counts.macs[1..steps].iter().all(|&c| c == 0));
            assert!(r.counts.state_updates[steps..2 * steps]
                .iter()
                .all(|&c| c == n_f as u64));
        }
    }
}

#[test]
fn if_law_float_away_from_boundaries() {
    let theta = 1.0f32;
    let alpha = 0.5f32;
    let currents: Vec<f32> = (0..50).map(|k| -0.2 + k as f32 * 0.0271).collect();
    let n_f = currents.len();
    let (g, tensors) = {
        let mut nb = NetBuilder::new(false, &[n_f], "static");
        nb.linear("fc", "input", n_f, vec![0; n_f * n_f], Some(vec![0; n_f]));
        nb.dsr_if("n", "fc", vec![1], vec![1]);
        nb.parts()
    };
    let tensors: Vec<(String, crate::format::Tensor)> = tensors
        .into_iter()
        .map(|(n, mut t)| {
            match n.as_str() {
                "fc.bias" => t.data = crate::format::TensorData::F32(currents.clone()),
                "n.theta" => t.data = crate::format::TensorData::F32(vec![theta]),
                "n.fire" => t.data = crate::format::TensorData::F32(vec![alpha * theta]),
                _ => {}
            }
            (n, t)
        })
        .collect();
    let m =
        Model::from_bytes(&crate::format::write_bytes(&g.to_string(), &tensors).unwrap()).unwrap();
    let steps = 20;
    let r = m
        .run_static(Data::F32(&vec![0.0; n_f]), steps, &[], None)
        .unwrap();
    for (k, &i) in currents.iter().enumerate() {
        let v = steps as f64 * i as f64 / theta as f64 + 1.0 - alpha as f64;
        if (v - v.round()).abs() < 1e-3 {
            continue; // too close to a boundary for float
        }
        let law = v.floor().clamp(0.0, steps as f64);
        assert_eq!(r.output_sum[k], law, "I = {i}");
    }
}

#[test]
fn int_unsigned_static_input_matches_reference() {
    // `input.signed` false: the static input lies in [0, 255]; values up to 255 reach the
    // first conv (whose 16-bit gather keeps `flush * 255 * max|w|` within i16) exactly.
    let mut active = vec![0u64; 14];
    for seed in 0..6 {
        let mut rng = Rng::new(300 + seed);
        let c_in = 1 + (seed as usize % 2);
        let mut nb = conv_net(&mut rng, true, c_in, "static");
        nb.input_signed = false;
        let mut m = nb.model();
        assert_eq!(m.input_range(), (0, 255));
        m.set_chunk([1, 2, 4, 32][seed as usize % 4]);
        let n_in = c_in * 42;
        let batch = 3;
        let x: Vec<i32> = (0..batch * n_in)
            .map(|_| match rng.next() % 4 {
                0 => 0,
                1 => 255,
                _ => rng.int(0, 255) as i32 / 32,
            })
            .collect();
        assert!(x.contains(&255));
        let steps = 6;
        let r = run_static_checked(&nb, &m, &x, n_in, steps);
        for (a, s) in active.iter_mut().zip(spike_totals(&r)) {
            *a += s;
        }
    }
    for i in [1usize, 4, 9, 11] {
        assert!(active[i] > 0, "node {i} never fired: {active:?}");
    }
}

#[test]
fn static_input_range_follows_input_signed() {
    let model = |signed: bool| {
        let mut nb = NetBuilder::new(true, &[3], "static");
        nb.input_signed = signed;
        nb.linear("fc", "input", 2, vec![1; 6], None);
        nb.integrate("out", "fc");
        nb.model()
    };
    let (signed, unsigned) = (model(true), model(false));
    assert_eq!(signed.input_range(), (-128, 127));
    assert!(!unsigned.info().input_signed);
    let ok = |m: &Model, x: [i32; 3]| m.run_static(Data::I32(&x), 2, &[], None);
    assert_eq!(
        ok(&signed, [-128, 127, 0]).unwrap().output_sum,
        vec![-2.0, -2.0]
    );
    assert_eq!(
        ok(&unsigned, [0, 255, 255]).unwrap().output_sum,
        vec![1020.0, 1020.0]
    );
    for (m, x, bad, range) in [
        (&signed, [0, 128, 0], "128", "[-128, 127]"),
        (&signed, [-129, 0, 0], "-129", "[-128, 127]"),
        (&unsigned, [0, 0, 256], "256", "[0, 255]"),
        (&unsigned, [5, -1, 0], "-1", "[0, 255]"),
    ] {
        let e = ok(m, x).unwrap_err().to_string();
        assert!(
            e.contains("'x'") && e.contains(bad) && e.contains(range) && e.contains("input.signed"),
            "{e}"
        );
    }
}

#[test]
fn first_layer_bound_holds_for_unsigned_input_255() {
    // The accumulator bound is `sum|w| * max|x| + |b|` with the step's own max|x|: with an
    // unsigned input it is 255, not 127. 257 * 255 * 32767 < 2^31 <= 258 * 255 * 32767.
    let run = |n: usize, w: Vec<i64>, x: i32| {
        let mut nb = NetBuilder::new(true, &[n], "static");
        nb.input_signed = false;
        nb.weight_bits = 16;
        nb.linear("fc", "input", 1, w, None);
        nb.integrate("out", "fc");
        nb.model().run_static(Data::I32(&vec![x; n]), 1, &[], None)
    };
    // largest sum that fits: exact on the fast (int32) path
    let r = run(257, vec![32767; 257], 255).unwrap();
    assert_eq!(r.output_sum, vec![257.0 * 255.0 * 32767.0]);
    // one more input overflows int32: an error naming the node, not a wrapped value
    let e = run(258, vec![32767; 258], 255).unwrap_err().to_string();
    assert!(e.contains("'fc'") && e.contains("step 0"), "{e}");
    // the same weights fit with inputs of at most 127 (the signed range's bound)
    let r = run(258, vec![32767; 258], 127).unwrap();
    assert_eq!(r.output_sum, vec![258.0 * 127.0 * 32767.0]);
    // bound exceeded but the true sum fits (weights cancel): the checked path is exact
    let w: Vec<i64> = (0..600)
        .map(|k| if k % 2 == 0 { 32767 } else { -32767 })
        .collect();
    assert_eq!(run(600, w, 255).unwrap().output_sum, vec![0.0]);
}

#[test]
fn int_overflow_is_detected_and_named() {
    // |sum| = 1000 * 127 * 32767 > 2^31: the fast path's bound fails; the checked path finds the
    // real overflow.
    let n = 1000;
    let mut nb = NetBuilder::new(true, &[n], "static");
    nb.weight_bits = 16;
    nb.linear("big", "input", 2, vec![32767; 2 * n], None);
    nb.integrate("out", "big");
    let m = nb.model();
    let e = m
        .run_static(Data::I32(&vec![127; n]), 3, &[], None)
        .unwrap_err();
    let s = e.to_string();
    assert!(
        s.contains("'big'") && s.contains("step 0") && s.contains("overflow"),
        "{s}"
    );

    // bound fails but the value fits (weights cancel): exact result, no error
    let mut nb = NetBuilder::new(true, &[n], "static");
    nb.weight_bits = 16;
    let w: Vec<i64> = (0..2 * n)
        .map(|k| if k % 2 == 0 { 32767 } else { -32767 })
        .collect();
    nb.linear("big", "input", 2, w, Some(vec![5, -5]));
    nb.integrate("out", "big");
    let m = nb.model();
    let r = m
        .run_static(Data::I32(&vec![127; n]), 2, &[], None)
        .unwrap();
    assert_eq!(r.output_sum, vec![10.0, -10.0]);

    // a membrane that grows step by step overflows at a known step
    let mut nb = NetBuilder::new(true, &[1], "static");
    nb.weight_bits = 16;
    nb.linear(
        "fc",
        "input",
        1,
        vec![32767],
        Some(vec![i32::MAX as i64 - 32767 * 127]),
    );
    nb.integrate("acc", "fc");
    let m = nb.model();
    let e = m
        .run_static(Data::I32(&[127]), 5, &[], None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("'acc'") && e.contains("step 1"), "{e}");

    // the stream keeps its last good state after an overflow
    let mut nb = NetBuilder::new(true, &[1, 1, 1], "events");
    nb.weight_bits = 16;
    nb.flatten("f", "input");
    nb.linear("fc", "f", 1, vec![30000], Some(vec![0]));
    nb.integrate("acc", "fc");
    let m = nb.model();
    let mut st = m.new_stream();
    st.feed_frames(Data::I32(&[1, 1]), &[]).unwrap();
    assert!(st.feed_frames(Data::I32(&[100000, 1]), &[]).is_err());
    assert_eq!(st.steps_done(), 2);
    let r = st.feed_frames(Data::I32(&[1]), &[]).unwrap();
    assert_eq!(r.output_sum, vec![90000.0]);
}

#[test]
fn threads_and_batch_order_do_not_change_results() {
    let mut rng = Rng::new(3);
    let nb = conv_net(&mut rng, true, 1, "static");
    let m = nb.model();
    let x: Vec<i32> = (0..5 * 42).map(|_| rng.int(-20, 20) as i32).collect();
    let rec = spiking_names(&nb);
    let a = m.run_static(Data::I32(&x), 4, &rec, Some(1)).unwrap();
    let b = m.run_static(Data::I32(&x), 4, &rec, Some(2)).unwrap();
    let c = m.run_static(Data::I32(&x), 4, &rec, None).unwrap();
    assert_eq!(a, b);
    assert_eq!(a, c);
    // the node-major chunk length does not change anything
    for chunk in [1, 3] {
        let mut m2 = nb.model();
        m2.set_chunk(chunk);
        assert_eq!(m2.run_static(Data::I32(&x), 4, &rec, Some(2)).unwrap(), a);
    }
    // one sample alone gives the same as inside the batch
    let d = m
        .run_static(Data::I32(&x[2 * 42..3 * 42]), 4, &rec, None)
        .unwrap();
    assert_eq!(d.output_sum, a.output_sum[2 * 3..3 * 3].to_vec());
}

#[test]
fn float_lif_and_dspike_follow_the_stated_operation_order() {
    // single neurons fed by a bias: the engine must match f32 operations in the documented order
    let n_f = 16;
    let mut nb = NetBuilder::new(false, &[n_f], "static");
    nb.linear("fc", "input", n_f, vec![0; n_f * n_f], Some(vec![0; n_f]));
    nb.dsr_lif("lif", "fc", vec![1], vec![1], vec![1], vec![1], 0);
    nb.linear("fc2", "input", n_f, vec![0; n_f * n_f], Some(vec![0; n_f]));
    nb.dspike("ds", "fc2", vec![1], vec![1], 0);
    nb.add("sum", &["lif", "ds"]);
    nb.integrate("out", "sum");
    let (g, tensors) = nb.parts();
    let mut rng = Rng::new(11);
    let cur: Vec<f32> = (0..n_f).map(|_| rng.uniform() * 0.6).collect();
    let (theta, fire, leak, gain) = (0.7f32, 0.3f32, 0.83f32, 0.41f32);
    let tensors: Vec<_> = tensors
        .into_iter()
        .map(|(n, mut t)| {
            let f = |v: Vec<f32>| crate::format::TensorData::F32(v);
            match n.as_str() {
                "fc.bias" | "fc2.bias" => t.data = f(cur.clone()),
                "lif.theta" => t.data = f(vec![theta]),
                "lif.fire" | "ds.fire" => t.data = f(vec![fire]),
                "lif.leak" | "ds.leak" => t.data = f(vec![leak]),
                "lif.gain" => t.data = f(vec![gain]),
                _ => {}
            }
            (n, t)
        })
        .collect();
    let m =
        Model::from_bytes(&crate::format::write_bytes(&g.to_string(), &tensors).unwrap()).unwrap();
    let steps = 25;
    let r = m
        .run_static(
            Data::F32(&vec![0.0; n_f]),
            steps,
            &["lif".into(), "ds".into()],
            None,
        )
        .unwrap();
    for k in 0..n_f {
        let (mut v1, mut v2, mut acc) = (0f32, 0f32, 0f32);
        for t in 0..steps {
            let u1 = leak * v1 + gain * cur[k];
            let s1 = u1 >= fire;
            v1 = if s1 { u1 - theta } else { u1 };
            let u2 = leak * v2 + cur[k];
            let s2 = u2 > fire;
            v2 = if s2 { 0.0 } else { u2 };
            acc += s1 as u8 as f32 + s2 as u8 as f32;
            assert_eq!(r.record[0].data[t * n_f + k], s1 as u8);
            assert_eq!(r.record[1].data[t * n_f + k], s2 as u8);
        }
        assert_eq!(r.output_sum[k], acc as f64);
    }
}

#[test]
fn static_input_values_are_checked() {
    let mut nb = NetBuilder::new(true, &[2], "static");
    nb.linear("fc", "input", 2, vec![1, 0, 0, 1], None);
    nb.dsr_if("n", "fc", vec![2], vec![1]);
    let m = nb.model();
    let e = m
        .run_static(Data::I32(&[0, 128]), 2, &[], None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("'x'") && e.contains("element 1"), "{e}");
    let e = m
        .run_static(Data::F32(&[0.0, 1.0]), 2, &[], None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("int32"), "{e}");
    let e = m
        .run_static(Data::I32(&[0, 1]), 0, &[], None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("steps"), "{e}");
    let e = m
        .run_static(Data::I32(&[0, 1]), 2, &["nope".into()], None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("nope"), "{e}");
    let e = m
        .run_static(Data::I32(&[0, 1, 2]), 2, &[], None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("multiple"), "{e}");
    // empty batch
    let r = m.run_static(Data::I32(&[]), 2, &[], None).unwrap();
    assert_eq!(r.batch, 0);
    assert!(r.output.is_empty());
    // float
    let mut nb = NetBuilder::new(false, &[2], "static");
    nb.linear("fc", "input", 2, vec![1, 0, 0, 1], None);
    nb.dsr_if("n", "fc", vec![2], vec![1]);
    let m = nb.model();
    assert!(m
        .run_static(Data::F32(&[0.0, f32::NAN]), 2, &[], None)
        .is_err());
    assert!(m.run_static(Data::F32(&[0.0, 1.0]), 2, &[], None).is_ok());
}

#[test]
fn prediction_takes_first_index_on_ties() {
    let mut nb = NetBuilder::new(true, &[3], "static");
    nb.linear("fc", "input", 3, vec![0; 9], Some(vec![1, 5, 5]));
    nb.integrate("out", "fc");
    let m = nb.model();
    let r = m.run_static(Data::I32(&[0, 0, 0]), 4, &[], None).unwrap();
    assert_eq!(r.prediction, vec![1]);
    assert_eq!(r.output, vec![1.0, 5.0, 5.0]);
    assert_eq!(r.output_sum, vec![4.0, 20.0, 20.0]);
}

#[test]
fn add_of_a_static_and_a_sparse_value() {
    // a static value feeding a non-static add is processed at step 0 only (doc §4)
    let mut rng = Rng::new(21);
    let n = 6;
    let mut nb = NetBuilder::new(true, &[n], "static");
    nb.linear(
        "fa",
        "input",
        n,
        rng.ints(n * n, -3, 3),
        Some(rng.ints(n, 0, 3)),
    );
    nb.dsr_if("sa", "fa", vec![4], vec![2]);
    nb.add("a", &["fa", "sa"]);
    nb.dsr_if("sb", "a", vec![3], vec![3]);
    let m = nb.model();
    let x: Vec<i32> = (0..n).map(|_| rng.int(-5, 5) as i32).collect();
    let steps = 5;
    let r = m
        .run_static(Data::I32(&x), steps, &spiking_names(&nb), None)
        .unwrap();
    let refo = reference(&nb, &[x.iter().map(|&v| v as i64).collect()], steps);
    check_against_reference(&nb, &r, 0, &refo);
    let aux = &r.counts.aux_ops[2 * steps..3 * steps];
    let spk = &r.counts.spikes[steps..2 * steps];
    assert_eq!(aux[0], n as u64 + spk[0]);
    for t in 1..steps {
        assert_eq!(aux[t], spk[t]);
    }
}

#[test]
fn leaky_integrate_matches_the_reference() {
    // int: per-channel leak on a [C, H, W] membrane (channels-last inside the engine) and a
    // per-feature leak on a flat output, against the reference
    let mut rng = Rng::new(21);
    let mut nb = NetBuilder::new(true, &[2, 4, 3], "static");
    nb.conv(
        "c1",
        "input",
        3,
        [3, 3],
        [1, 1],
        [1, 1],
        rng.ints(3 * 2 * 9, -3, 4),
        Some(rng.ints(3, -2, 2)),
    );
    nb.leaky_integrate("li", "c1", vec![3, 1, 4], 2);
    nb.dsr_if("n1", "li", vec![40], vec![20]);
    nb.flatten("f", "n1");
    let n_f = nb.shape_of("f")[0];
    nb.linear("fc", "f", 4, rng.ints(4 * n_f, -2, 3), None);
    nb.scale("s", "fc", vec![64], None, 1);
    nb.leaky_integrate("out", "s", vec![1000, 2000, 3000, 4096], 12);
    let m = nb.model();
    let x: Vec<i32> = (0..3 * 24).map(|_| rng.int(-30, 30) as i32).collect();
    let rec = spiking_names(&nb);
    let steps = 6;
    let r = m.run_static(Data::I32(&x), steps, &rec, None).unwrap();
    for b in 0..3 {
        let xi: Vec<i64> = x[b * 24..(b + 1) * 24].iter().map(|&v| v as i64).collect();
        let refo = reference(&nb, &[xi], steps);
        check_against_reference(&nb, &r, b, &refo);
    }
    assert!(spike_totals(&r)[2] > 0);

    // float: V = leak*V + x, one product then one sum
    let mut nb = NetBuilder::new(false, &[3], "static");
    nb.linear("fc", "input", 3, vec![0; 9], Some(vec![0; 3]));
    nb.leaky_integrate("out", "fc", vec![1], 0);
    let (g, tensors) = nb.parts();
    let (leak, bias) = (0.83f32, [0.1f32, -0.7, 0.33]);
    let tensors: Vec<_> = tensors
        .into_iter()
        .map(|(k, mut t)| {
            if k == "out.leak" {
                t.data = crate::format::TensorData::F32(vec![leak]);
            } else if k == "fc.bias" {
                t.data = crate::format::TensorData::F32(bias.to_vec());
            }
            (k, t)
        })
        .collect();
    let bytes = crate::format::write_bytes(&g.to_string(), &tensors).unwrap();
    let m = Model::from_bytes(&bytes).unwrap();
    let r = m.run_static(Data::F32(&[0.0; 3]), 5, &[], None).unwrap();
    for (k, &c) in bias.iter().enumerate() {
        let mut v = 0.0f32;
        for _ in 0..5 {
            let a = leak * v;
            v = a + c;
        }
        assert_eq!(r.output_sum[k], v as f64);
    }
}

#[test]
fn leaky_integrate_needs_f_in_int_precision() {
    let mut nb = NetBuilder::new(true, &[3], "static");
    nb.linear("fc", "input", 3, vec![1; 9], None);
    nb.leaky_integrate("out", "fc", vec![3], 2);
    let (mut g, tensors) = nb.parts();
    g["nodes"][1].as_object_mut().unwrap().remove("f");
    let bytes = crate::format::write_bytes(&g.to_string(), &tensors).unwrap();
    let e = Model::from_bytes(&bytes).unwrap_err().to_string();
    assert!(e.contains("'out'") && e.contains("'f'"), "{e}");
    g["nodes"][1]["f"] = serde_json::json!(0);
    let bytes = crate::format::write_bytes(&g.to_string(), &tensors).unwrap();
    let e = Model::from_bytes(&bytes).unwrap_err().to_string();
    assert!(e.contains("'f'") && e.contains("[1, 31]"), "{e}");
}

/// A network whose layers are large enough for one sample to be split across threads (and for
/// the gather conv and the dense pool to be chosen).
fn large_net(rng: &mut Rng, int: bool) -> NetBuilder {
    let mut nb = NetBuilder::new(int, &[2, 40, 40], "events");
    nb.conv(
        "c1",
        "input",
        16,
        [3, 3],
        [1, 1],
        [1, 1],
        rng.ints(16 * 2 * 9, -3, 4),
        Some(rng.ints(16, 0, 2)),
    );
    nb.dsr_if("n1", "c1", vec![4], vec![2]);
    nb.pool("p1", "n1", false, [2, 2], [2, 2], 0, 0);
    nb.conv(
        "c2",
        "p1",
        48,
        [3, 3],
        [1, 1],
        [1, 1],
        rng.ints(48 * 16 * 9, -3, 4),
        None,
    );
    nb.dsr_if("n2", "c2", vec![6], vec![3]);
    nb.flatten("f", "n2");
    let n_f = nb.shape_of("f")[0];
    nb.linear("fc", "f", 10, rng.ints(10 * n_f, -2, 3), None);
    nb.dsr_if("n3", "fc", vec![8], vec![4]);
    nb
}

#[test]
fn one_sample_split_across_threads_equals_serial_and_reference() {
    for int in [true, false] {
        let mut rng = Rng::new(77);
        let nb = large_net(&mut rng, int);
        let m = nb.model();
        let rec = spiking_names(&nb);
        let (n_in, steps) = (2 * 40 * 40, 4);
        let fr: Vec<i64> = (0..steps * n_in)
            .map(|_| rng.next().is_multiple_of(3) as i64)
            .collect();
        let run = |threads| {
            if int {
                let v: Vec<i32> = fr.iter().map(|&x| x as i32).collect();
                m.run_frames(Data::I32(&v), 1, steps, &rec, threads)
            } else {
                let v: Vec<f32> = fr.iter().map(|&x| x as f32).collect();
                m.run_frames(Data::F32(&v), 1, steps, &rec, threads)
            }
            .unwrap()
        };
        let serial = run(Some(1));
        assert!(
            spike_totals(&serial).iter().any(|&s| s > 1000),
            "layers fire"
        );
        assert_eq!(run(Some(2)), serial);
        assert_eq!(run(Some(3)), serial);
        assert_eq!(run(None), serial);
        let ins: Vec<Vec<i64>> = (0..steps)
            .map(|t| fr[t * n_in..(t + 1) * n_in].to_vec())
            .collect();
        check_against_reference(&nb, &serial, 0, &reference(&nb, &ins, steps));
    }
}

/// A checked (int64) conv leaves its accumulators zeroed: a pool that scatters its window sums
/// into the same scratch space later, in the next chunk or the next sample on a reused state,
/// sees zeros (found by the engine fuzz target).
#[test]
fn wide_accumulation_leaves_the_scratch_zeroed() {
    let mut nb = NetBuilder::new(true, &[1, 4, 4], "events");
    nb.pool("p", "input", false, [1, 1], [1, 1], 0, 0);
    nb.conv("c", "p", 1, [3, 3], [1, 1], [1, 1], vec![127; 9], None);
    nb.dsr_if("n", "c", vec![1 << 30], vec![1 << 29]);
    let m = nb.model();
    let mut x = vec![0i32; 16];
    x[5] = 1 << 22; // 127 * 2^22 fits int32, 9 * 127 * 2^22 does not: the checked path
    let one = m.run_frames(Data::I32(&x), 1, 1, &[], Some(1)).unwrap();
    let two_x: Vec<i32> = x.iter().chain(x.iter()).copied().collect();
    let two = m.run_frames(Data::I32(&two_x), 2, 1, &[], Some(1)).unwrap();
    assert_eq!(two.output_sum[16..], one.output_sum[..]);
    assert_eq!(two.output_sum[..16], one.output_sum[..]);
    let mut m2 = nb.model();
    m2.set_chunk(1);
    let steps: Vec<i32> = x.iter().chain(x.iter()).copied().collect();
    let r = m2
        .run_frames(Data::I32(&steps), 1, 2, &[], Some(1))
        .unwrap();
    let whole = nb
        .model()
        .run_frames(Data::I32(&steps), 1, 2, &[], Some(1))
        .unwrap();
    assert_eq!(r, whole);
}

/// Several batch-of-one runs at once on the same cached pool: a team whose helpers cannot
/// start (the pool's threads all run samples) still finishes, with the same results.
#[test]
fn concurrent_single_sample_runs_share_the_pool_without_waiting_on_each_other() {
    let mut rng = Rng::new(78);
    let nb = large_net(&mut rng, true);
    let m = nb.model();
    let n_in = 2 * 40 * 40;
    let fr: Vec<i32> = (0..3 * n_in)
        .map(|_| rng.next().is_multiple_of(3) as i32)
        .collect();
    let want = m.run_frames(Data::I32(&fr), 1, 3, &[], Some(1)).unwrap();
    std::thread::scope(|s| {
        let runs: Vec<_> = (0..4)
            .map(|_| s.spawn(|| m.run_frames(Data::I32(&fr), 1, 3, &[], Some(2)).unwrap()))
            .collect();
        for r in runs {
            assert_eq!(r.join().unwrap(), want);
        }
    });
}

/// A recurrent int layer `s = dsr_if(W x + R delay(s))` on sequence input: spikes equal a
/// hand-written loop, whatever the threads, and a stream fed in two parts equals one run.
#[test]
fn recurrent_layer_through_a_delay_matches_a_loop() {
    use crate::format::{Tensor, TensorData};
    let (n_in, n, t_steps, batch) = (5usize, 4usize, 12usize, 3usize);
    let mut rng = Rng::new(33);
    let w: Vec<i64> = rng.ints(n * n_in, -6, 7);
    let r: Vec<i64> = rng.ints(n * n, -6, 7);
    let (theta, fire) = (9i64, 5i64);
    let g = serde_json::json!({
        "version": 1, "precision": "int",
        "input": {"shape": [n_in], "kind": "sequence"},
        "nodes": [
            {"name": "fc", "op": "linear", "inputs": ["input"], "in_features": n_in,
             "out_features": n, "weight_bits": 8},
            {"name": "prev", "op": "delay", "inputs": ["sn"], "shape": [n]},
            {"name": "rec", "op": "linear", "inputs": ["prev"], "in_features": n,
             "out_features": n, "weight_bits": 8},
            {"name": "sum", "op": "add", "inputs": ["fc", "rec"]},
            {"name": "sn", "op": "dsr_if", "inputs": ["sum"]}
        ],
        "output": "sn"
    });
    let i8s = |v: &[i64], shape: Vec<usize>| Tensor {
        shape,
        data: TensorData::I8(v.iter().map(|&x| x as i8).collect()),
    };
    let i32s = |v: i64| Tensor {
        shape: vec![1],
        data: TensorData::I32(vec![v as i32]),
    };
    let tensors = vec![
        ("fc.weight".to_string(), i8s(&w, vec![n, n_in])),
        ("rec.weight".to_string(), i8s(&r, vec![n, n])),
        ("sn.theta".to_string(), i32s(theta)),
        ("sn.fire".to_string(), i32s(fire)),
    ];
    let m =
        Model::from_bytes(&crate::format::write_bytes(&g.to_string(), &tensors).unwrap()).unwrap();
    let x: Vec<i32> = (0..batch * t_steps * n_in)
        .map(|_| rng.int(0, 2) as i32)
        .collect();
    let rec = vec!["sn".to_string()];
    let one = m
        .run_frames(Data::I32(&x), batch, t_steps, &rec, Some(1))
        .unwrap();
    let two = m
        .run_frames(Data::I32(&x), batch, t_steps, &rec, Some(2))
        .unwrap();
    assert_eq!(one, two);
    let mut fired = 0;
    for b in 0..batch {
        let (mut v, mut s) = (vec![0i64; n], vec![0i64; n]);
        for t in 0..t_steps {
            let xt = &x[(b * t_steps + t) * n_in..(b * t_steps + t + 1) * n_in];
            let mut s_new = vec![0i64; n];
            for o in 0..n {
                let cur: i64 = (0..n_in)
                    .map(|i| w[o * n_in + i] * xt[i] as i64)
                    .sum::<i64>()
                    + (0..n).map(|i| r[o * n + i] * s[i]).sum::<i64>();
                let u = v[o] + cur;
                s_new[o] = (u >= fire) as i64;
                v[o] = u - theta * s_new[o];
                let got = one.record[0].data[(b * t_steps + t) * n + o] as i64;
                assert_eq!(got, s_new[o], "sample {b}, step {t}, neuron {o}");
                fired += s_new[o];
            }
            s = s_new;
        }
    }
    assert!(fired > 0);
    // a stream fed 5 then 7 steps of sample 0 gives its spikes
    let mut st = m.new_stream();
    let a = st.feed_frames(Data::I32(&x[..5 * n_in]), &rec).unwrap();
    let b = st
        .feed_frames(Data::I32(&x[5 * n_in..t_steps * n_in]), &rec)
        .unwrap();
    let mut both = a.record[0].data.clone();
    both.extend_from_slice(&b.record[0].data);
    assert_eq!(both, one.record[0].data[..t_steps * n]);
}

#[test]
fn input_check_names_the_first_bad_element_in_any_block() {
    use crate::engine::compiled::check_input;
    use crate::engine::value::EngineValue;
    use crate::numeric::Precision;
    // Bad elements past the first block and two in one block: the first is reported.
    let n = 3 * 4096 + 17;
    let mut x = vec![0i32; n];
    x[2 * 4096 + 5] = 256;
    x[2 * 4096 + 9] = -129;
    let e = check_input::<i32>(
        Data::I32(&x),
        "x",
        Precision::Int,
        1,
        i32::static_ok,
        i32::static_error,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("element 8197") && e.contains("256"), "{e}");
    x[2 * 4096 + 5] = 0;
    x[2 * 4096 + 9] = 0;
    assert!(check_input::<i32>(
        Data::I32(&x),
        "x",
        Precision::Int,
        1,
        i32::static_ok,
        i32::static_error
    )
    .is_ok());
    let mut f = vec![0.5f32; n];
    f[n - 1] = f32::NAN;
    let e = check_input::<f32>(
        Data::F32(&f),
        "frames",
        Precision::Float32,
        1,
        f32::frame_ok,
        f32::frame_error,
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("frames") && e.contains(&format!("element {}", n - 1)),
        "{e}"
    );
}

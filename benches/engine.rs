//! Engine benchmark: MLP 784-800-800-10 with DSR-IF neurons, T = 20, batch 1, static input,
//! float32 and int8 precision. Weights are random, scaled so that the hidden layers fire at
//! about 10% (checked at setup); the input is MNIST-like (about 20% of the pixels nonzero).

use criterion::{criterion_group, criterion_main, Criterion};
use serde_json::json;
use snnsim::{write_model_bytes as write_bytes, Tensor, TensorData};
use snnsim::{Data, Model};

mod common;
use common::Rng;

const SIZES: [usize; 4] = [784, 800, 800, 10];
const STEPS: usize = 20;
const TARGET_RATE: f64 = 0.10;

fn graph(int: bool) -> String {
    let bits = |o: &mut serde_json::Value| {
        if int {
            o["weight_bits"] = json!(8);
        }
    };
    let mut fc1 = json!({"name": "fc1", "op": "linear", "inputs": ["input"], "in_features": 784, "out_features": 800});
    let mut fc2 = json!({"name": "fc2", "op": "linear", "inputs": ["sn1"], "in_features": 800, "out_features": 800});
    let mut fc3 = json!({"name": "fc3", "op": "linear", "inputs": ["sn2"], "in_features": 800, "out_features": 10});
    bits(&mut fc1);
    bits(&mut fc2);
    bits(&mut fc3);
    let mut input = json!({"shape": [784], "kind": "static"});
    if int {
        input["scale"] = json!(1.0 / 127.0);
    }
    json!({
        "version": 1,
        "precision": if int { "int" } else { "float32" },
        "input": input,
        "nodes": [
            fc1,
            {"name": "sn1", "op": "dsr_if", "inputs": ["fc1"]},
            fc2,
            {"name": "sn2", "op": "dsr_if", "inputs": ["fc2"]},
            fc3,
            {"name": "out", "op": "integrate", "inputs": ["fc3"]}
        ],
        "output": "out"
    })
    .to_string()
}

fn f32t(shape: Vec<usize>, v: Vec<f32>) -> Tensor {
    Tensor {
        shape,
        data: TensorData::F32(v),
    }
}

/// Float weights `[out][in]` per layer and the input.
struct Float {
    w: Vec<Vec<f64>>,
    x: Vec<f64>,
}

fn float_model(f: &Float, scales: &[f64; 3]) -> Model {
    let mut t = Vec::new();
    for (l, name) in ["fc1", "fc2", "fc3"].iter().enumerate() {
        let w: Vec<f32> = f.w[l].iter().map(|&v| (v * scales[l]) as f32).collect();
        t.push((
            format!("{name}.weight"),
            f32t(vec![SIZES[l + 1], SIZES[l]], w),
        ));
    }
    for n in ["sn1", "sn2"] {
        t.push((format!("{n}.theta"), f32t(vec![1], vec![1.0])));
        t.push((format!("{n}.fire"), f32t(vec![1], vec![0.5])));
    }
    Model::from_bytes(&write_bytes(&graph(false), &t).unwrap()).unwrap()
}

fn rate(m: &Model, x: Data<'_>, layer: usize) -> f64 {
    let r = m.run_static(x, STEPS, &[], Some(1)).unwrap();
    let l = r.n_nodes;
    let node = 1 + 2 * layer;
    let s: u64 = r.counts.spikes[node * STEPS..(node + 1) * STEPS]
        .iter()
        .sum();
    let _ = l;
    s as f64 / (STEPS * SIZES[layer + 1]) as f64
}

/// Scales layer 1 then layer 2 so that each hidden layer fires at about TARGET_RATE.
fn calibrate(f: &Float) -> [f64; 3] {
    let mut scales = [1.0, 1.0, 1.0];
    let x: Vec<f32> = f.x.iter().map(|&v| v as f32).collect();
    for layer in 0..2 {
        let (mut lo, mut hi) = (1e-4f64, 10.0f64);
        for _ in 0..40 {
            let mid = (lo * hi).sqrt();
            scales[layer] = mid;
            let r = rate(&float_model(f, &scales), Data::F32(&x), layer);
            if r < TARGET_RATE {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        scales[layer] = (lo * hi).sqrt();
    }
    scales
}

fn int_model(f: &Float, scales: &[f64; 3]) -> (Model, Vec<i32>) {
    // input q = round(x * 127) in [0, 127]; per-layer weight scales s_l = max|w| / 127
    let s_in = 1.0 / 127.0;
    let q_in: Vec<i32> = f.x.iter().map(|&v| (v / s_in).round() as i32).collect();
    let mut t = Vec::new();
    let mut thetas = Vec::new();
    let mut in_scale = s_in; // scale of one unit of this layer's input
    for (l, name) in ["fc1", "fc2", "fc3"].iter().enumerate() {
        let w: Vec<f64> = f.w[l].iter().map(|&v| v * scales[l]).collect();
        let max = w.iter().fold(0.0f64, |a, &v| a.max(v.abs()));
        let s = max / 127.0;
        let q: Vec<i8> = w
            .iter()
            .map(|&v| (v / s).round().clamp(-127.0, 127.0) as i8)
            .collect();
        t.push((
            format!("{name}.weight"),
            Tensor {
                shape: vec![SIZES[l + 1], SIZES[l]],
                data: TensorData::I8(q),
            },
        ));
        // accumulator unit = in_scale * s ; theta = 1.0 in float units
        let theta_q = (1.0 / (in_scale * s)).round().max(1.0) as i32;
        thetas.push(theta_q);
        in_scale = 1.0; // spikes carry theta = 1.0 (folded into the next weights)
    }
    for (k, n) in ["sn1", "sn2"].iter().enumerate() {
        let th = thetas[k];
        t.push((
            format!("{n}.theta"),
            Tensor {
                shape: vec![1],
                data: TensorData::I32(vec![th]),
            },
        ));
        t.push((
            format!("{n}.fire"),
            Tensor {
                shape: vec![1],
                data: TensorData::I32(vec![(th + 1) / 2]),
            },
        ));
    }
    let m = Model::from_bytes(&write_bytes(&graph(true), &t).unwrap()).unwrap();
    (m, q_in)
}

fn setup() -> (Model, Vec<f32>, Model, Vec<i32>) {
    let mut rng = Rng(0x2545F4914F6CDD1D);
    let w: Vec<Vec<f64>> = (0..3)
        .map(|l| {
            (0..SIZES[l] * SIZES[l + 1])
                .map(|_| rng.normal() + 0.02)
                .collect()
        })
        .collect();
    // MNIST-like input: ~20% of the pixels in (0, 1]
    let x: Vec<f64> = (0..784)
        .map(|_| {
            if rng.uniform() < 0.2 {
                0.05 + 0.95 * rng.uniform()
            } else {
                0.0
            }
        })
        .collect();
    let f = Float { w, x };
    let scales = calibrate(&f);
    let mf = float_model(&f, &scales);
    let xf: Vec<f32> = f.x.iter().map(|&v| v as f32).collect();
    let (mi, xi) = int_model(&f, &scales);
    for (name, m, d) in [
        ("float32", &mf, Data::F32(&xf)),
        ("int8", &mi, Data::I32(&xi)),
    ] {
        eprintln!(
            "{name}: hidden firing rates {:.3} / {:.3}",
            rate(m, d, 0),
            rate(m, d, 1)
        );
    }
    (mf, xf, mi, xi)
}

/// `SNNSIM_BENCH_LOOP=float32|int8:N` runs N iterations without criterion (for `perf stat`).
fn plain_loop() -> bool {
    let Ok(spec) = std::env::var("SNNSIM_BENCH_LOOP") else {
        return false;
    };
    let (which, n) = spec.split_once(':').unwrap_or((spec.as_str(), "10000"));
    let n: usize = n.parse().unwrap_or(10000);
    let (mf, xf, mi, xi) = setup();
    // min and median over blocks of 100 runs: the minimum is robust to other load
    let mut per = Vec::new();
    for _ in 0..(n / 100).max(1) {
        let t0 = std::time::Instant::now();
        for _ in 0..100 {
            let r = if which == "int8" {
                mi.run_static(Data::I32(&xi), STEPS, &[], Some(1))
            } else {
                mf.run_static(Data::F32(&xf), STEPS, &[], Some(1))
            };
            std::hint::black_box(r.unwrap());
        }
        per.push(t0.elapsed().as_secs_f64() * 1e6 / 100.0);
    }
    per.sort_by(|a, b| a.total_cmp(b));
    eprintln!(
        "{which}: min {:.1} us, median {:.1} us per run (blocks of 100)",
        per[0],
        per[per.len() / 2]
    );
    true
}

fn bench(c: &mut Criterion) {
    if plain_loop() {
        return;
    }
    let (mf, xf, mi, xi) = setup();
    let mut g = c.benchmark_group("mlp784-800-800-10_dsr_if_T20_b1");
    g.sample_size(200);
    g.measurement_time(std::time::Duration::from_secs(4));
    g.bench_function("float32", |b| {
        b.iter(|| mf.run_static(Data::F32(&xf), STEPS, &[], Some(1)).unwrap())
    });
    g.bench_function("int8", |b| {
        b.iter(|| mi.run_static(Data::I32(&xi), STEPS, &[], Some(1)).unwrap())
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

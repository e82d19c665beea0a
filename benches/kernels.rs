//! Scatter-kernel throughput in synaptic operations (SOPs) per second on one core, through the
//! public `Model` API: one weighted layer fed a binary spike train, its outputs integrated.
//!
//! * linear 1024 -> 1024 (int8 weights fit the L2 cache) and 4096 -> 4096 (16 MiB of int8
//!   weights: bound by reading the active rows from memory), input 10 % active per step;
//! * conv 64 -> 64 channels, 3x3, padding 1, on 32x32, input 5 % active, and 32 -> 64 on 17x17
//!   (the second conv of the event-camera network), 10 % active. At these activities the dense
//!   int8 conv does not run (it needs 1/8 active); the engine picks scatter or gather by the
//!   step's work, as it does in a network.
//!
//! T = 10, batch 1, one thread; float32 and int8 weights. The SOPs of one run are the engine's
//! own count (`counts.sops`, identical at every run), so criterion's throughput is SOP/s; the
//! per-step integration of the outputs is part of the time (it is what a layer costs as used).
//! `python benches/kernel_throughput.py` runs this and writes `benches/results/kernels.json`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use serde_json::json;
use snnsim::{write_model_bytes, Data, Model, Tensor, TensorData};

mod common;
use common::Rng;

const STEPS: usize = 10;

/// One benchmarked layer: its node JSON, weight shape, input shape and input activity.
struct Layer {
    name: &'static str,
    node: serde_json::Value,
    weight_shape: Vec<usize>,
    input_shape: Vec<usize>,
    active: f64,
}

fn layers() -> Vec<Layer> {
    vec![
        Layer {
            name: "linear_1024x1024_in10pct",
            node: json!({"name": "w", "op": "linear", "inputs": ["input"],
                         "in_features": 1024, "out_features": 1024}),
            weight_shape: vec![1024, 1024],
            input_shape: vec![1024],
            active: 0.10,
        },
        Layer {
            name: "linear_4096x4096_in10pct",
            node: json!({"name": "w", "op": "linear", "inputs": ["input"],
                         "in_features": 4096, "out_features": 4096}),
            weight_shape: vec![4096, 4096],
            input_shape: vec![4096],
            active: 0.10,
        },
        Layer {
            name: "conv_64x64x3x3_32x32_in5pct",
            node: json!({"name": "w", "op": "conv2d", "inputs": ["input"],
                         "in_channels": 64, "out_channels": 64, "kernel": [3, 3],
                         "stride": [1, 1], "padding": [1, 1]}),
            weight_shape: vec![64, 64, 3, 3],
            input_shape: vec![64, 32, 32],
            active: 0.05,
        },
        Layer {
            name: "conv_32x64x3x3_17x17_in10pct",
            node: json!({"name": "w", "op": "conv2d", "inputs": ["input"],
                         "in_channels": 32, "out_channels": 64, "kernel": [3, 3],
                         "stride": [1, 1], "padding": [1, 1]}),
            weight_shape: vec![64, 32, 3, 3],
            input_shape: vec![32, 17, 17],
            active: 0.10,
        },
    ]
}

fn model(layer: &Layer, int: bool) -> Model {
    let mut node = layer.node.clone();
    if int {
        node["weight_bits"] = json!(8);
    }
    let graph = json!({
        "version": 1,
        "precision": if int { "int" } else { "float32" },
        "input": {"shape": layer.input_shape, "kind": "sequence", "scale": 1.0},
        "nodes": [node, {"name": "out", "op": "integrate", "inputs": ["w"]}],
        "output": "out"
    })
    .to_string();
    let mut rng = Rng(0x9E3779B97F4A7C15);
    let n: usize = layer.weight_shape.iter().product();
    let w: Vec<i8> = (0..n).map(|_| rng.weight()).collect();
    let data = if int {
        TensorData::I8(w)
    } else {
        TensorData::F32(w.iter().map(|&v| v as f32 / 127.0).collect())
    };
    let t = vec![(
        "w.weight".to_string(),
        Tensor {
            shape: layer.weight_shape.clone(),
            data,
        },
    )];
    Model::from_bytes(&write_model_bytes(&graph, &t).expect("model bytes")).expect("model")
}

/// `[1, T, *input_shape]` binary frames with about `active` of the elements 1 at each step.
fn frames(layer: &Layer) -> Vec<i32> {
    let n: usize = layer.input_shape.iter().product();
    let mut rng = Rng(0x2545F4914F6CDD1D);
    (0..n * STEPS)
        .map(|_| rng.below(layer.active) as i32)
        .collect()
}

fn bench(c: &mut Criterion) {
    for layer in layers() {
        let xi = frames(&layer);
        let xf: Vec<f32> = xi.iter().map(|&v| v as f32).collect();
        let mut g = c.benchmark_group(layer.name);
        g.sample_size(30);
        g.measurement_time(std::time::Duration::from_secs(4));
        for (prec, int) in [("float32", false), ("int8", true)] {
            let m = model(&layer, int);
            let run = |m: &Model| {
                let d = if int { Data::I32(&xi) } else { Data::F32(&xf) };
                m.run_frames(d, 1, STEPS, &[], Some(1)).expect("run")
            };
            let sops: u64 = run(&m).counts.sops.iter().sum();
            assert!(sops > 0, "{}: no synaptic operations counted", layer.name);
            g.throughput(Throughput::Elements(sops));
            g.bench_function(prec, |b| b.iter(|| run(&m)));
        }
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);

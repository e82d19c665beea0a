//! The engine on arbitrary small networks: a chain of layers drawn from the input (linear,
//! conv, pools, flatten, scale, a residual add, the three neurons, an integrating or spiking
//! output) in float32 or int precision, with arbitrary weights and parameters, run on static
//! input or per-step frames. Properties: no panic or abort; a run gives the same result on one
//! thread and on several; feeding the frames to a stream in two parts gives the one-shot run;
//! an error (integer overflow, non-finite float32 value) is the same either way.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value as Json};
use snnsim::{Data, Model, RunResult, Tensor, TensorData};

#[derive(Debug, Arbitrary)]
enum Layer {
    Linear {
        out: u8,
        bias: bool,
    },
    Conv {
        out: u8,
        k: u8,
        s: u8,
        p: u8,
        bias: bool,
    },
    AvgPool {
        k: u8,
        m: u16,
        f: u8,
    },
    SumPool {
        k: u8,
    },
    Flatten,
    Scale {
        f: u8,
        shift: bool,
    },
    Residual,
    If,
    Lif {
        f: u8,
    },
    Dspike {
        f: u8,
    },
}

#[derive(Debug, Arbitrary)]
struct Net {
    int: bool,
    events: bool,
    spatial: bool,
    dims: (u8, u8, u8),
    bits: u8,
    layers: Vec<Layer>,
    integrate_out: bool,
    leak: bool,
    steps: u8,
    split: u8,
    batch: u8,
    seed: u64,
}

/// A small deterministic generator for the bulk numbers.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn int(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next() % ((hi - lo + 1) as u64)) as i64
    }
}

struct Builder {
    int: bool,
    bits: u32,
    rng: Rng,
    nodes: Vec<Json>,
    tensors: Vec<(String, Tensor)>,
    count: usize,
}

impl Builder {
    fn tensor(&mut self, name: &str, field: &str, shape: Vec<usize>, lo: i64, hi: i64, w: bool) {
        let n: usize = shape.iter().product();
        let v: Vec<i64> = (0..n).map(|_| self.rng.int(lo, hi)).collect();
        let data = if !self.int {
            TensorData::F32(v.iter().map(|&x| x as f32 * 0.25).collect())
        } else if w && self.bits == 16 {
            TensorData::I16(v.iter().map(|&x| x as i16).collect())
        } else if w {
            TensorData::I8(v.iter().map(|&x| x as i8).collect())
        } else {
            TensorData::I32(v.iter().map(|&x| x as i32).collect())
        };
        self.tensors
            .push((format!("{name}.{field}"), Tensor { shape, data }));
    }

    fn wrange(&self) -> (i64, i64) {
        match self.bits {
            4 => (-8, 7),
            16 => (-300, 300),
            _ => (-128, 127),
        }
    }

    fn node(&mut self, prefix: &str, mut j: Json, inputs: &[&str]) -> String {
        self.count += 1;
        let name = format!("{prefix}{}", self.count);
        j["name"] = json!(name);
        j["inputs"] = json!(inputs);
        self.nodes.push(j);
        name
    }

    fn neuron(&mut self, kind: u8, f: u8, x: &str, c: usize) -> String {
        let f = 1 + (f % 16) as i64;
        let name = format!("sn{}", self.count + 1);
        let int = self.int;
        match kind {
            0 => {
                self.tensor(&name, "theta", vec![c], 1, 40, false);
                self.tensor(&name, "fire", vec![c], 1, 20, false);
                self.node("sn", json!({"op": "dsr_if"}), &[x])
            }
            1 => {
                self.tensor(&name, "theta", vec![c], 1, 40, false);
                self.tensor(&name, "fire", vec![c], 1, 20, false);
                if int {
                    self.tensor(&name, "leak_m", vec![1], 0, 1 << f, false);
                    self.tensor(&name, "gain_m", vec![1], -(1 << f), 1 << f, false);
                    self.node("sn", json!({"op": "dsr_lif", "f": f}), &[x])
                } else {
                    self.tensor(&name, "leak", vec![1], 0, 4, false);
                    self.tensor(&name, "gain", vec![1], -4, 4, false);
                    self.node("sn", json!({"op": "dsr_lif"}), &[x])
                }
            }
            _ => {
                self.tensor(&name, "fire", vec![c], 1, 20, false);
                if int {
                    self.tensor(&name, "leak_m", vec![1], 0, 1 << f, false);
                    self.node("sn", json!({"op": "dspike_lif", "f": f}), &[x])
                } else {
                    self.tensor(&name, "leak", vec![1], 0, 4, false);
                    self.node("sn", json!({"op": "dspike_lif"}), &[x])
                }
            }
        }
    }
}

/// The graph JSON and tensors of `n`, or None when its layers do not make a network.
fn build(n: &Net) -> Option<(String, Vec<(String, Tensor)>, Vec<usize>)> {
    let bits = [4u32, 8, 16][n.bits as usize % 3];
    let mut b = Builder {
        int: n.int,
        bits,
        rng: Rng(n.seed),
        nodes: Vec::new(),
        tensors: Vec::new(),
        count: 0,
    };
    let spatial = n.events || n.spatial;
    let input: Vec<usize> = if spatial {
        let c = if n.events {
            1 + n.dims.0 as usize % 2
        } else {
            1 + n.dims.0 as usize % 3
        };
        vec![c, 1 + n.dims.1 as usize % 6, 1 + n.dims.2 as usize % 6]
    } else {
        vec![1 + n.dims.0 as usize % 16]
    };
    let wb = if n.int { json!(bits) } else { Json::Null };
    let (lo, hi) = b.wrange();
    let mut x = "input".to_string();
    let mut shape = input.clone();
    let mut prev_same: Option<(String, Vec<usize>)> = None;
    for layer in n.layers.iter().take(6) {
        let here = (x.clone(), shape.clone());
        match *layer {
            Layer::Linear { out, bias } if shape.len() == 1 => {
                let o = 1 + out as usize % 12;
                let name = format!("fc{}", b.count + 1);
                b.tensor(&name, "weight", vec![o, shape[0]], lo, hi, true);
                if bias {
                    b.tensor(&name, "bias", vec![o], -20, 20, false);
                }
                let mut j = json!({"op": "linear", "in_features": shape[0], "out_features": o});
                if n.int {
                    j["weight_bits"] = wb.clone();
                }
                x = b.node("fc", j, &[&x]);
                shape = vec![o];
            }
            Layer::Conv { out, k, s, p, bias } if shape.len() == 3 => {
                let (o, k, s, p) = (
                    1 + out as usize % 4,
                    1 + k as usize % 3,
                    1 + s as usize % 2,
                    p as usize % 2,
                );
                if shape[1] + 2 * p < k || shape[2] + 2 * p < k {
                    continue;
                }
                let name = format!("conv{}", b.count + 1);
                b.tensor(&name, "weight", vec![o, shape[0], k, k], lo, hi, true);
                if bias {
                    b.tensor(&name, "bias", vec![o], -20, 20, false);
                }
                let mut j = json!({"op": "conv2d", "in_channels": shape[0], "out_channels": o,
                    "kernel": [k, k], "stride": [s, s], "padding": [p, p]});
                if n.int {
                    j["weight_bits"] = wb.clone();
                }
                x = b.node("conv", j, &[&x]);
                shape = vec![
                    o,
                    (shape[1] + 2 * p - k) / s + 1,
                    (shape[2] + 2 * p - k) / s + 1,
                ];
            }
            Layer::AvgPool { k, m, f } if shape.len() == 3 => {
                let k = 1 + k as usize % 2;
                if shape[1] < k || shape[2] < k {
                    continue;
                }
                let mut j = json!({"op": "avgpool2d", "kernel": [k, k], "stride": [k, k]});
                if n.int {
                    j["m"] = json!(m);
                    j["f"] = json!(1 + f % 31);
                }
                x = b.node("pool", j, &[&x]);
                shape = vec![shape[0], shape[1] / k, shape[2] / k];
            }
            Layer::SumPool { k } if shape.len() == 3 => {
                let k = 1 + k as usize % 2;
                if shape[1] < k || shape[2] < k {
                    continue;
                }
                x = b.node(
                    "pool",
                    json!({"op": "sumpool2d", "kernel": [k, k], "stride": [k, k]}),
                    &[&x],
                );
                shape = vec![shape[0], shape[1] / k, shape[2] / k];
            }
            Layer::Flatten if shape.len() == 3 => {
                x = b.node("flat", json!({"op": "flatten"}), &[&x]);
                shape = vec![shape.iter().product()];
            }
            Layer::Scale { f, shift } => {
                let name = format!("scale{}", b.count + 1);
                let c = shape[0];
                if n.int {
                    b.tensor(&name, "m", vec![c], -300, 300, false);
                } else {
                    b.tensor(&name, "scale", vec![c], -8, 8, false);
                }
                if shift {
                    b.tensor(&name, "shift", vec![1], -5, 5, false);
                }
                let j = if n.int {
                    json!({"op": "scale", "f": 1 + f % 31})
                } else {
                    json!({"op": "scale"})
                };
                x = b.node("scale", j, &[&x]);
            }
            Layer::Residual => {
                if let Some((y, s)) = &prev_same {
                    if *s == shape && *y != x {
                        let y = y.clone();
                        x = b.node("add", json!({"op": "add"}), &[&x, &y]);
                    }
                }
            }
            Layer::If => x = b.neuron(0, 0, &x, shape[0]),
            Layer::Lif { f } => x = b.neuron(1, f, &x, shape[0]),
            Layer::Dspike { f } => x = b.neuron(2, f, &x, shape[0]),
            _ => {}
        }
        prev_same = Some(here);
    }
    // output: an integrate node or a neuron
    let c = shape[0];
    let out = if n.integrate_out {
        let name = format!("out{}", b.count + 1);
        if n.leak {
            if n.int {
                b.tensor(&name, "leak_m", vec![1], 0, 16, false);
                b.node("out", json!({"op": "integrate", "f": 4}), &[&x])
            } else {
                b.tensor(&name, "leak", vec![1], 0, 4, false);
                b.node("out", json!({"op": "integrate"}), &[&x])
            }
        } else {
            b.node("out", json!({"op": "integrate"}), &[&x])
        }
    } else {
        b.neuron(0, 0, &x, c)
    };
    let mut inp = json!({"shape": input, "kind": if n.events { "events" } else { "static" }});
    if n.int && !n.events {
        inp["scale"] = json!(0.0078125);
    }
    let g = json!({
        "version": 1,
        "precision": if n.int { "int" } else { "float32" },
        "input": inp,
        "nodes": b.nodes,
        "output": out,
    });
    Some((g.to_string(), b.tensors, input))
}

fn same(a: &snnsim::Result<RunResult>, b: &snnsim::Result<RunResult>) {
    match (a, b) {
        (Ok(a), Ok(b)) => {
            assert_eq!(a.counts, b.counts);
            assert_eq!(a.record, b.record);
            assert_eq!(a.prediction, b.prediction);
            for (x, y) in a.output_sum.iter().zip(&b.output_sum) {
                assert!(x == y || (x.is_nan() && y.is_nan()), "{x} != {y}");
            }
        }
        (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
        (a, b) => panic!(
            "one run failed, the other did not: {:?} / {:?}",
            a.is_ok(),
            b.is_ok()
        ),
    }
}

fuzz_target!(|n: Net| {
    snnsim::set_memory_limit(Some(256 << 20)).unwrap();
    let Some((g, tensors, input)) = build(&n) else {
        return;
    };
    let bytes = snnsim::write_model_bytes(&g, &tensors).expect("serialise");
    let model = match Model::from_bytes(&bytes) {
        Ok(m) => m,
        Err(e) => panic!("a network built to the format was refused: {e}\n{g}"),
    };
    let len: usize = input.iter().product();
    let steps = 1 + n.steps as usize % 6;
    let batch = 1 + n.batch as usize % 3;
    let mut rng = Rng(n.seed ^ 0x5eed);
    let record: Vec<String> = model
        .info()
        .node_names
        .iter()
        .zip(&model.info().node_ops)
        .filter(|(_, op)| op.starts_with("dsr") || op.starts_with("dspike"))
        .map(|(name, _)| name.clone())
        .collect();
    if n.events {
        let vals: Vec<i64> = (0..batch * steps * len).map(|_| rng.int(0, 2)).collect();
        let fi: Vec<i32> = vals.iter().map(|&v| v as i32).collect();
        let ff: Vec<f32> = vals.iter().map(|&v| v as f32).collect();
        let data = if n.int {
            Data::I32(&fi)
        } else {
            Data::F32(&ff)
        };
        let one = model.run_frames(data, batch, steps, &record, Some(1));
        let many = model.run_frames(data, batch, steps, &record, Some(3));
        same(&one, &many);
        // sample 0 through a stream, in two parts
        let k = (n.split as usize % steps).max(1).min(steps);
        let per = len;
        let part = |lo: usize, hi: usize| -> Data<'_> {
            if n.int {
                Data::I32(&fi[lo * per..hi * per])
            } else {
                Data::F32(&ff[lo * per..hi * per])
            }
        };
        let mut st = model.new_stream();
        let first = st.feed_frames(part(0, k), &record);
        let second = if k < steps {
            st.feed_frames(part(k, steps), &record)
        } else {
            first.clone()
        };
        let whole = model.run_frames(part(0, steps), 1, steps, &record, Some(1));
        assert_eq!(
            whole.is_ok(),
            first.is_ok() && second.is_ok(),
            "one-shot: {:?}\nstream: {:?} / {:?}",
            whole.as_ref().err(),
            first.as_ref().err(),
            second.as_ref().err()
        );
        if let (Ok(w), Ok(s)) = (&whole, &second) {
            assert_eq!(w.output_sum.len(), s.output_sum.len());
            assert_eq!(w.prediction, s.prediction);
        }
    } else {
        let vals: Vec<i64> = (0..batch * len).map(|_| rng.int(-128, 127)).collect();
        let fi: Vec<i32> = vals.iter().map(|&v| v as i32).collect();
        let ff: Vec<f32> = vals.iter().map(|&v| v as f32 / 64.0).collect();
        let data = if n.int {
            Data::I32(&fi)
        } else {
            Data::F32(&ff)
        };
        let one = model.run_static(data, steps, &record, Some(1));
        let many = model.run_static(data, steps, &record, Some(3));
        same(&one, &many);
    }
});

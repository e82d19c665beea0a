//! Test helpers: a builder that writes network files from Rust (graph JSON with serde_json,
//! tensors with the safetensors crate), and an independent reference simulator working in torch
//! layout with exact int64 arithmetic (also exact for float networks whose parameters and
//! inputs are small integers).

#![allow(dead_code, clippy::too_many_arguments)]

use serde_json::{json, Value as Json};

use crate::format::write_bytes;
use crate::format::{Tensor, TensorData};
use crate::numeric::fx;

/// Small deterministic generator (xorshift).
pub(crate) struct Rng(u64);
impl Rng {
    pub(crate) fn new(s: u64) -> Self {
        Rng(s.wrapping_mul(0x9E3779B97F4A7C15) | 1)
    }
    pub(crate) fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    pub(crate) fn int(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next() % ((hi - lo + 1) as u64)) as i64
    }
    pub(crate) fn ints(&mut self, n: usize, lo: i64, hi: i64) -> Vec<i64> {
        (0..n).map(|_| self.int(lo, hi)).collect()
    }
    pub(crate) fn uniform(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }
}

#[derive(Debug, Clone)]
pub(crate) enum ROp {
    Linear {
        w: Vec<i64>,
        b: Option<Vec<i64>>,
        n_in: usize,
        n_out: usize,
    },
    Conv {
        w: Vec<i64>,
        b: Option<Vec<i64>>,
        co: usize,
        k: [usize; 2],
        s: [usize; 2],
        p: [usize; 2],
    },
    Pool {
        avg: bool,
        k: [usize; 2],
        s: [usize; 2],
        m: i64,
        f: u32,
    },
    Flatten,
    Add,
    Scale {
        m: Vec<i64>,
        shift: Option<Vec<i64>>,
        f: u32,
    },
    If {
        theta: Vec<i64>,
        fire: Vec<i64>,
    },
    Lif {
        theta: Vec<i64>,
        fire: Vec<i64>,
        leak: Vec<i64>,
        gain: Vec<i64>,
        f: u32,
    },
    Dspike {
        fire: Vec<i64>,
        leak: Vec<i64>,
        f: u32,
    },
    /// `leak`: `None` for the plain integrator.
    Integrate {
        leak: Option<Vec<i64>>,
        f: u32,
    },
}

#[derive(Debug, Clone)]
pub(crate) struct RNode {
    pub name: String,
    pub op: ROp,
    pub inputs: Vec<String>,
    pub shape: Vec<usize>,
}

/// Builds a network (int or float precision; float parameters are the integers as f32).
#[derive(Debug, Clone)]
pub(crate) struct NetBuilder {
    pub int: bool,
    pub input_shape: Vec<usize>,
    pub input_kind: &'static str,
    pub nodes: Vec<RNode>,
    pub output: String,
    pub weight_bits: u32,
    /// `input.signed` of the file (int static input in [-128, 127], or [0, 255] when false).
    pub input_signed: bool,
}

fn numel(s: &[usize]) -> usize {
    s.iter().product()
}

impl NetBuilder {
    pub(crate) fn new(int: bool, input_shape: &[usize], input_kind: &'static str) -> Self {
        NetBuilder {
            int,
            input_shape: input_shape.to_vec(),
            input_kind,
            nodes: Vec::new(),
            output: String::new(),
            weight_bits: 8,
            input_signed: true,
        }
    }

    pub(crate) fn shape_of(&self, name: &str) -> Vec<usize> {
        if name == "input" {
            return self.input_shape.clone();
        }
        self.nodes
            .iter()
            .find(|n| n.name == name)
            .map(|n| n.shape.clone())
            .expect("unknown node in builder")
    }

    fn push(&mut self, name: &str, op: ROp, inputs: &[&str], shape: Vec<usize>) -> &mut Self {
        self.nodes.push(RNode {
            name: name.into(),
            op,
            inputs: inputs.iter().map(|s| s.to_string()).collect(),
            shape,
        });
        self.output = name.into();
        self
    }

    pub(crate) fn linear(
        &mut self,
        name: &str,
        inp: &str,
        n_out: usize,
        w: Vec<i64>,
        b: Option<Vec<i64>>,
    ) -> &mut Self {
        let n_in = numel(&self.shape_of(inp));
        assert_eq!(w.len(), n_in * n_out);
        self.push(name, ROp::Linear { w, b, n_in, n_out }, &[inp], vec![n_out])
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn conv(
        &mut self,
        name: &str,
        inp: &str,
        co: usize,
        k: [usize; 2],
        s: [usize; 2],
        p: [usize; 2],
        w: Vec<i64>,
        b: Option<Vec<i64>>,
    ) -> &mut Self {
        let sh = self.shape_of(inp);
        assert_eq!(w.len(), co * sh[0] * k[0] * k[1]);
        let ho = (sh[1] + 2 * p[0] - k[0]) / s[0] + 1;
        let wo = (sh[2] + 2 * p[1] - k[1]) / s[1] + 1;
        self.push(
            name,
            ROp::Conv { w, b, co, k, s, p },
            &[inp],
            vec![co, ho, wo],
        )
    }

    pub(crate) fn pool(
        &mut self,
        name: &str,
        inp: &str,
        avg: bool,
        k: [usize; 2],
        s: [usize; 2],
        m: i64,
        f: u32,
    ) -> &mut Self {
        let sh = self.shape_of(inp);
        let ho = (sh[1] - k[0]) / s[0] + 1;
        let wo = (sh[2] - k[1]) / s[1] + 1;
        self.push(
            name,
            ROp::Pool { avg, k, s, m, f },
            &[inp],
            vec![sh[0], ho, wo],
        )
    }

    pub(crate) fn flatten(&mut self, name: &str, inp: &str) -> &mut Self {
        let n = numel(&self.shape_of(inp));
        self.push(name, ROp::Flatten, &[inp], vec![n])
    }

    pub(crate) fn add(&mut self, name: &str, inps: &[&str]) -> &mut Self {
        let sh = self.shape_of(inps[0]);
        self.push(name, ROp::Add, inps, sh)
    }

    pub(crate) fn scale(
        &mut self,
        name: &str,
        inp: &str,
        m: Vec<i64>,
        shift: Option<Vec<i64>>,
        f: u32,
    ) -> &mut Self {
        let sh = self.shape_of(inp);
        self.push(name, ROp::Scale { m, shift, f }, &[inp], sh)
    }

    pub(crate) fn dsr_if(
        &mut self,
        name: &str,
        inp: &str,
        theta: Vec<i64>,
        fire: Vec<i64>,
    ) -> &mut Self {
        let sh = self.shape_of(inp);
        self.push(name, ROp::If { theta, fire }, &[inp], sh)
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn dsr_lif(
        &mut self,
        name: &str,
        inp: &str,
        theta: Vec<i64>,
        fire: Vec<i64>,
        leak: Vec<i64>,
        gain: Vec<i64>,
        f: u32,
    ) -> &mut Self {
        let sh = self.shape_of(inp);
        self.push(
            name,
            ROp::Lif {
                theta,
                fire,
                leak,
                gain,
                f,
            },
            &[inp],
            sh,
        )
    }

    pub(crate) fn dspike(
        &mut self,
        name: &str,
        inp: &str,
        fire: Vec<i64>,
        leak: Vec<i64>,
        f: u32,
    ) -> &mut Self {
        let sh = self.shape_of(inp);
        self.push(name, ROp::Dspike { fire, leak, f }, &[inp], sh)
    }

    pub(crate) fn integrate(&mut self, name: &str, inp: &str) -> &mut Self {
        let sh = self.shape_of(inp);
        self.push(name, ROp::Integrate { leak: None, f: 0 }, &[inp], sh)
    }

    /// `V = leak*V + x` (int: `fx(leak, V, f) + x`).
    pub(crate) fn leaky_integrate(
        &mut self,
        name: &str,
        inp: &str,
        leak: Vec<i64>,
        f: u32,
    ) -> &mut Self {
        let sh = self.shape_of(inp);
        self.push(
            name,
            ROp::Integrate {
                leak: Some(leak),
                f,
            },
            &[inp],
            sh,
        )
    }

    fn wt(&self, v: &[i64], shape: Vec<usize>) -> Tensor {
        let data = if !self.int {
            TensorData::F32(v.iter().map(|&x| x as f32).collect())
        } else if self.weight_bits == 16 {
            TensorData::I16(v.iter().map(|&x| x as i16).collect())
        } else {
            TensorData::I8(v.iter().map(|&x| x as i8).collect())
        };
        Tensor { shape, data }
    }

    fn pt(&self, v: &[i64]) -> Tensor {
        let data = if self.int {
            TensorData::I32(v.iter().map(|&x| x as i32).collect())
        } else {
            TensorData::F32(v.iter().map(|&x| x as f32).collect())
        };
        Tensor {
            shape: vec![v.len()],
            data,
        }
    }

    /// The graph JSON and tensors.
    pub(crate) fn parts(&self) -> (Json, Vec<(String, Tensor)>) {
        let mut nodes = Vec::new();
        let mut tensors = Vec::new();
        let int = self.int;
        for n in &self.nodes {
            let mut j = json!({"name": n.name, "inputs": n.inputs});
            let o = j.as_object_mut().unwrap();
            let mut t = |field: &str, tensor: Tensor| {
                tensors.push((format!("{}.{}", n.name, field), tensor))
            };
            match &n.op {
                ROp::Linear { w, b, n_in, n_out } => {
                    o.insert("op".into(), json!("linear"));
                    o.insert("in_features".into(), json!(n_in));
                    o.insert("out_features".into(), json!(n_out));
                    if int {
                        o.insert("weight_bits".into(), json!(self.weight_bits));
                    }
                    t("weight", self.wt(w, vec![*n_out, *n_in]));
                    if let Some(b) = b {
                        t("bias", self.pt(b));
                    }
                }
                ROp::Conv { w, b, co, k, s, p } => {
                    let ci = self.shape_of(&n.inputs[0])[0];
                    o.insert("op".into(), json!("conv2d"));
                    o.insert("in_channels".into(), json!(ci));
                    o.insert("out_channels".into(), json!(co));
                    o.insert("kernel".into(), json!(k));
                    o.insert("stride".into(), json!(s));
                    o.insert("padding".into(), json!(p));
                    if int {
                        o.insert("weight_bits".into(), json!(self.weight_bits));
                    }
                    t("weight", self.wt(w, vec![*co, ci, k[0], k[1]]));
                    if let Some(b) = b {
                        t("bias", self.pt(b));
                    }
                }
                ROp::Pool { avg, k, s, m, f } => {
                    o.insert(
                        "op".into(),
                        json!(if *avg { "avgpool2d" } else { "sumpool2d" }),
                    );
                    o.insert("kernel".into(), json!(k));
                    o.insert("stride".into(), json!(s));
                    if *avg && int {
                        o.insert("m".into(), json!(m));
                        o.insert("f".into(), json!(f));
                    }
                }
                ROp::Flatten => {
                    o.insert("op".into(), json!("flatten"));
                }
                ROp::Add => {
                    o.insert("op".into(), json!("add"));
                }
                ROp::Scale { m, shift, f } => {
                    o.insert("op".into(), json!("scale"));
                    if int {
                        o.insert("f".into(), json!(f));
                    }
                    t(if int { "m" } else { "scale" }, self.pt(m));
                    if let Some(s) = shift {
                        t("shift", self.pt(s));
                    }
                }
                ROp::If { theta, fire } => {
                    o.insert("op".into(), json!("dsr_if"));
                    t("theta", self.pt(theta));
                    t("fire", self.pt(fire));
                }
                ROp::Lif {
                    theta,
                    fire,
                    leak,
                    gain,
                    f,
                } => {
                    o.insert("op".into(), json!("dsr_lif"));
                    if int {
                        o.insert("f".into(), json!(f));
                    }
                    t("theta", self.pt(theta));
                    t("fire", self.pt(fire));
                    t(if int { "leak_m" } else { "leak" }, self.pt(leak));
                    t(if int { "gain_m" } else { "gain" }, self.pt(gain));
                }
                ROp::Dspike { fire, leak, f } => {
                    o.insert("op".into(), json!("dspike_lif"));
                    if int {
                        o.insert("f".into(), json!(f));
                    }
                    t("fire", self.pt(fire));
                    t(if int { "leak_m" } else { "leak" }, self.pt(leak));
                }
                ROp::Integrate { leak, f } => {
                    o.insert("op".into(), json!("integrate"));
                    if let Some(leak) = leak {
                        if int {
                            o.insert("f".into(), json!(f));
                        }
                        t(if int { "leak_m" } else { "leak" }, self.pt(leak));
                    }
                }
            }
            nodes.push(j);
        }
        let mut input = json!({"shape": self.input_shape, "kind": self.input_kind});
        if int && self.input_kind == "static" {
            input["scale"] = json!(0.0078125);
        }
        if !self.input_signed {
            input["signed"] = json!(false);
        }
        let g = json!({
            "version": 1,
            "precision": if int { "int" } else { "float32" },
            "input": input,
            "nodes": nodes,
            "output": self.output,
        });
        (g, tensors)
    }

    pub(crate) fn bytes(&self) -> Vec<u8> {
        let (g, t) = self.parts();
        write_bytes(&g.to_string(), &t).expect("serialise")
    }

    pub(crate) fn model(&self) -> crate::engine::Model {
        crate::engine::Model::from_bytes(&self.bytes()).expect("model loads")
    }
}

/// Reference results of one sample.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct RefOut {
    /// Per node per step spikes (torch layout), spiking nodes only (else empty).
    pub spikes: Vec<Vec<Vec<u8>>>,
    /// [L][T] counts
    pub counts: [Vec<Vec<u64>>; 5],
    pub output_sum: Vec<i64>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum RK {
    Static,
    Sparse,
    Dense,
}

/// Simulates one sample. `inputs[t]` is the input at step t (torch layout); a static input
/// is given as a single entry.
pub(crate) fn reference(b: &NetBuilder, inputs: &[Vec<i64>], steps: usize) -> RefOut {
    let l = b.nodes.len();
    let static_in = inputs.len() == 1 && b.input_kind == "static" && steps > 0;
    let idx = |name: &str| b.nodes.iter().position(|n| n.name == name);
    let mut vals: Vec<Vec<i64>> = b.nodes.iter().map(|n| vec![0; numel(&n.shape)]).collect();
    let mut mem: Vec<Vec<i64>> = vals.clone();
    let mut kinds = vec![RK::Dense; l];
    let kind_of = |kinds: &Vec<RK>, name: &str| -> RK {
        match idx(name) {
            None => {
                if static_in {
                    RK::Static
                } else {
                    RK::Sparse
                }
            }
            Some(j) => kinds[j],
        }
    };
    // kinds (nodes are given in topological order by the builder)
    for (i, n) in b.nodes.iter().enumerate() {
        let ks: Vec<RK> = n.inputs.iter().map(|s| kind_of(&kinds, s)).collect();
        let all = |k: RK| ks.iter().all(|&x| x == k);
        kinds[i] = match &n.op {
            ROp::Flatten => ks[0],
            ROp::Linear { .. } | ROp::Conv { .. } => {
                if all(RK::Static) {
                    RK::Static
                } else {
                    RK::Dense
                }
            }
            ROp::Pool { .. } | ROp::Add => {
                if all(RK::Static) {
                    RK::Static
                } else if all(RK::Sparse) {
                    RK::Sparse
                } else {
                    RK::Dense
                }
            }
            ROp::Scale { shift, .. } => {
                let zero = shift.as_ref().is_none_or(|s| s.iter().all(|&v| v == 0));
                if all(RK::Static) {
                    RK::Static
                } else if all(RK::Sparse) && zero {
                    RK::Sparse
                } else {
                    RK::Dense
                }
            }
            ROp::Integrate { .. } => RK::Dense,
            _ => RK::Sparse,
        };
    }
    let mut out = RefOut {
        spikes: vec![Vec::new(); l],
        counts: std::array::from_fn(|_| vec![vec![0u64; steps]; l]),
        output_sum: Vec::new(),
    };
    let oi = idx(&b.output).unwrap();
    let mut out_cnt = vec![0i64; numel(&b.nodes[oi].shape)];
    let chan = |shape: &[usize], k: usize, p: &[i64]| -> i64 {
        let c = if shape.len() == 3 {
            k / (shape[1] * shape[2])
        } else {
            k
        };
        if p.len() == 1 {
            p[0]
        } else {
            p[c]
        }
    };
    for t in 0..steps {
        let x_in: Vec<i64> = if static_in {
            inputs[0].clone()
        } else {
            inputs[t].clone()
        };
        for (i, n) in b.nodes.iter().enumerate() {
            if kinds[i] == RK::Static && t > 0 {
                continue;
            }
            let get = |vals: &Vec<Vec<i64>>, s: &str| -> Vec<i64> {
                match idx(s) {
                    None => x_in.clone(),
                    Some(j) => vals[j].clone(),
                }
            };
            let x = get(&vals, &n.inputs[0]);
            let ik = kind_of(&kinds, &n.inputs[0]);
            let ish = b.shape_of(&n.inputs[0]);
            let processed = |x: &Vec<i64>| -> Vec<bool> {
                match ik {
                    RK::Sparse => x.iter().map(|&v| v != 0).collect(),
                    RK::Dense => vec![true; x.len()],
                    RK::Static => vec![t == 0; x.len()],
                }
            };
            let (sp, so, ma, au, su) = (0, 1, 2, 3, 4);
            let y: Vec<i64> = match &n.op {
                ROp::Linear {
                    w,
                    b: bias,
                    n_in,
                    n_out,
                } => {
                    let pr = processed(&x);
                    let c = pr.iter().filter(|&&p| p).count() as u64 * *n_out as u64;
                    out.counts[if ik == RK::Sparse { so } else { ma }][i][t] += c;
                    (0..*n_out)
                        .map(|o| {
                            bias.as_ref().map_or(0, |b| b[o])
                                + (0..*n_in).map(|k| w[o * n_in + k] * x[k]).sum::<i64>()
                        })
                        .collect()
                }
                ROp::Conv {
                    w,
                    b: bias,
                    co,
                    k,
                    s,
                    p,
                } => {
                    let (ci, h, wd) = (ish[0], ish[1], ish[2]);
                    let (ho, wo) = (n.shape[1], n.shape[2]);
                    let mut y = vec![0i64; co * ho * wo];
                    let mut fan = vec![0u64; h * wd];
                    for oc in 0..*co {
                        for oy in 0..ho {
                            for ox in 0..wo {
                                let mut acc = bias.as_ref().map_or(0, |b| b[oc]);
                                for c in 0..ci {
                                    for ky in 0..k[0] {
                                        for kx in 0..k[1] {
                                            let iy = (oy * s[0] + ky) as isize - p[0] as isize;
                                            let ix = (ox * s[1] + kx) as isize - p[1] as isize;
                                            if iy < 0
                                                || ix < 0
                                                || iy >= h as isize
                                                || ix >= wd as isize
                                            {
                                                continue;
                                            }
                                            let (iy, ix) = (iy as usize, ix as usize);
                                            if oc == 0 && c == 0 {
                                                fan[iy * wd + ix] += 1;
                                            }
                                            acc += w[((oc * ci + c) * k[0] + ky) * k[1] + kx]
                                                * x[(c * h + iy) * wd + ix];
                                        }
                                    }
                                }
                                y[(oc * ho + oy) * wo + ox] = acc;
                            }
                        }
                    }
                    let pr = processed(&x);
                    let c: u64 = (0..x.len())
                        .filter(|&e| pr[e])
                        .map(|e| fan[e % (h * wd)] * *co as u64)
                        .sum();
                    out.counts[if ik == RK::Sparse { so } else { ma }][i][t] += c;
                    y
                }
                ROp::Pool { avg, k, s, m, f } => {
                    let (c, h, wd) = (ish[0], ish[1], ish[2]);
                    let (ho, wo) = (n.shape[1], n.shape[2]);
                    let mut y = vec![0i64; c * ho * wo];
                    let mut fan = vec![0u64; h * wd];
                    for ch in 0..c {
                        for oy in 0..ho {
                            for ox in 0..wo {
                                let mut sum = 0;
                                for ky in 0..k[0] {
                                    for kx in 0..k[1] {
                                        let (iy, ix) = (oy * s[0] + ky, ox * s[1] + kx);
                                        if ch == 0 {
                                            fan[iy * wd + ix] += 1;
                                        }
                                        sum += x[(ch * h + iy) * wd + ix];
                                    }
                                }
                                y[(ch * ho + oy) * wo + ox] = if *avg {
                                    if b.int {
                                        fx(*m, sum, *f)
                                    } else {
                                        sum / (k[0] * k[1]) as i64
                                    }
                                } else {
                                    sum
                                };
                            }
                        }
                    }
                    let pr = processed(&x);
                    out.counts[au][i][t] += (0..x.len())
                        .filter(|&e| pr[e])
                        .map(|e| fan[e % (h * wd)])
                        .sum::<u64>();
                    y
                }
                ROp::Flatten => x.clone(),
                ROp::Add => {
                    let mut y = vec![0i64; x.len()];
                    for s in &n.inputs {
                        let v = get(&vals, s);
                        let k = kind_of(&kinds, s);
                        let c = match k {
                            RK::Sparse => v.iter().filter(|&&e| e != 0).count(),
                            RK::Dense => v.len(),
                            RK::Static => {
                                if t == 0 {
                                    v.len()
                                } else {
                                    0
                                }
                            }
                        };
                        out.counts[au][i][t] += c as u64;
                        for (a, e) in y.iter_mut().zip(v) {
                            *a += e;
                        }
                    }
                    y
                }
                ROp::Scale { m, shift, f } => {
                    let pr = processed(&x);
                    out.counts[au][i][t] += pr.iter().filter(|&&p| p).count() as u64;
                    (0..x.len())
                        .map(|k| {
                            let mm = chan(&ish, k, m);
                            let sh = shift.as_ref().map_or(0, |s| chan(&ish, k, s));
                            if b.int {
                                fx(mm, x[k], *f) + sh
                            } else {
                                x[k] * mm + sh
                            }
                        })
                        .collect()
                }
                ROp::If { theta, fire } => {
                    let v = &mut mem[i];
                    (0..x.len())
                        .map(|k| {
                            let u = v[k] + x[k];
                            let s = (u >= chan(&ish, k, fire)) as i64;
                            v[k] = u - chan(&ish, k, theta) * s;
                            s
                        })
                        .collect()
                }
                ROp::Lif {
                    theta,
                    fire,
                    leak,
                    gain,
                    f,
                } => {
                    assert!(b.int, "reference LIF is int only");
                    let v = &mut mem[i];
                    (0..x.len())
                        .map(|k| {
                            let u = fx(chan(&ish, k, leak), v[k], *f)
                                + fx(chan(&ish, k, gain), x[k], *f);
                            let s = (u >= chan(&ish, k, fire)) as i64;
                            v[k] = u - chan(&ish, k, theta) * s;
                            s
                        })
                        .collect()
                }
                ROp::Dspike { fire, leak, f } => {
                    assert!(b.int, "reference dspike is int only");
                    let v = &mut mem[i];
                    (0..x.len())
                        .map(|k| {
                            let u = fx(chan(&ish, k, leak), v[k], *f) + x[k];
                            let s = (u > chan(&ish, k, fire)) as i64;
                            v[k] = if s == 1 { 0 } else { u };
                            s
                        })
                        .collect()
                }
                ROp::Integrate { leak, f } => {
                    let v = &mut mem[i];
                    for k in 0..x.len() {
                        v[k] = match leak {
                            None => v[k] + x[k],
                            Some(l) => {
                                assert!(b.int, "reference leaky integrate is int only");
                                fx(chan(&ish, k, l), v[k], *f) + x[k]
                            }
                        };
                    }
                    v.clone()
                }
            };
            match &n.op {
                ROp::If { .. } | ROp::Lif { .. } | ROp::Dspike { .. } => {
                    out.counts[sp][i][t] = y.iter().filter(|&&s| s != 0).count() as u64;
                    out.counts[su][i][t] = y.len() as u64;
                    out.spikes[i].push(y.iter().map(|&s| s as u8).collect());
                    if i == oi {
                        for (c, &s) in out_cnt.iter_mut().zip(&y) {
                            *c += s;
                        }
                    }
                }
                ROp::Integrate { .. } => out.counts[su][i][t] = y.len() as u64,
                _ => {}
            }
            vals[i] = y;
        }
    }
    out.output_sum = if matches!(b.nodes[oi].op, ROp::Integrate { .. }) {
        mem[oi].clone()
    } else {
        out_cnt
    };
    out
}

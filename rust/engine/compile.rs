//! Compilation of a validated model file into a [`Network`]: weights re-laid out for the
//! scatter kernels, per-channel parameters expanded, fan-outs and dense MAC counts, overflow
//! bounds, and the value kind of every slot per input plan.

use std::sync::Arc;

use super::network::{
    AddOp, ConvOp, DelayLink, Kind, Layout, LinearOp, Network, NeuronOp, Node, Op, Plan, PoolOp,
    ScaleOp, CHUNK_BYTES, MAX_CHUNK, PASS_BYTES,
};
use super::value::FromTensor;
use crate::error::{Result, SnnError};
use crate::format::{Graph, ModelFile, NodeParams, OpKind, Src, TensorData};
use crate::kernels::{vnni, Geom};
use crate::neurons::NeuronParams;
use crate::numeric::{Precision, Value, WeightBuf, Weights};

fn internal(node: &str, op: &str, what: &str) -> SnnError {
    SnnError::Internal(format!("node '{node}' ({op}): {what}"))
}

/// `[C, H, W]` of a value: itself, `[C, 1, L]` for a 1-d value `[C, L]`; None for `[F]`.
fn chw(shape: &[usize]) -> Option<(usize, usize, usize)> {
    match *shape {
        [c, h, w] => Some((c, h, w)),
        [c, l] => Some((c, 1, l)),
        _ => None,
    }
}

fn layout_of(shape: &[usize]) -> Layout {
    match chw(shape) {
        Some((c, h, w)) => Layout::Hwc { c, h, w },
        None => Layout::Flat { perm: None },
    }
}

/// `map[k]` = internal index in layout `to` of the element at internal index `k` of layout
/// `from` (None when the layouts are equal).
fn relayout_map(from: &Layout, to: &Layout, len: usize) -> Option<Vec<u32>> {
    if from == to {
        return None;
    }
    let mut inv = vec![0u32; len];
    for k in 0..len {
        inv[to.torch_index(k)] = k as u32;
    }
    Some((0..len).map(|k| inv[from.torch_index(k)]).collect())
}

/// Expands a per-channel parameter (`[C]` or `[1]`) to one period of the value's internal
/// layout: `C` entries for HWC values, `F` entries (permuted) for flat values.
fn expand_param<V: Copy>(p: &[V], layout: &Layout, len: usize) -> (Vec<V>, usize) {
    let at = |c: usize| if p.len() == 1 { p[0] } else { p[c] };
    match layout {
        Layout::Hwc { c, .. } => ((0..*c).map(at).collect(), *c),
        Layout::Flat { .. } => (
            (0..len).map(|k| at(layout.torch_index(k))).collect(),
            len.max(1),
        ),
    }
}

fn weights_from(t: &TensorData, relayout: impl Fn(usize) -> usize, n: usize) -> Option<Weights> {
    // `relayout(k)` = index in the file tensor of engine element k.
    Some(match t {
        TensorData::F32(v) => {
            Weights::F32(WeightBuf::new((0..n).map(|k| v[relayout(k)]).collect()))
        }
        TensorData::I8(v) => Weights::I8(WeightBuf::new((0..n).map(|k| v[relayout(k)]).collect())),
        TensorData::I16(v) => {
            Weights::I16(WeightBuf::new((0..n).map(|k| v[relayout(k)]).collect()))
        }
        _ => return None,
    })
}

fn abs_of(t: &TensorData, k: usize) -> i64 {
    match t {
        TensorData::I8(v) => (v[k] as i64).abs(),
        TensorData::I16(v) => (v[k] as i64).abs(),
        TensorData::I32(v) => (v[k] as i64).abs(),
        _ => 0,
    }
}

/// Compiles a validated model file for values of type `V` (must match the precision).
pub fn compile<V: Value + FromTensor>(mf: &ModelFile) -> Result<Network<V>> {
    let g: &Graph = &mf.graph;
    if g.precision != V::PRECISION {
        return Err(SnnError::Internal("precision mismatch in compile".into()));
    }
    super::limits::check_graph(mf)?;
    let input_layout = layout_of(&g.input.shape);
    let input_len: usize = g.input.shape.iter().product();

    let mut nodes: Vec<Node<V>> = Vec::with_capacity(g.nodes.len());
    let mut slot_len = vec![input_len];
    let src_slot = |nodes: &Vec<Node<V>>, s: Src| match s {
        Src::Input => 0usize,
        Src::Node(j) => nodes[j].slot,
    };

    for (ni, spec) in g.nodes.iter().enumerate() {
        let params: &NodeParams = &mf.params[ni];
        let name = spec.name.as_str();
        let opn = spec.op.as_str();
        // a delay's source may come later; it is linked after every node is compiled
        let srcs: &[Src] = if spec.op == OpKind::Delay {
            &[]
        } else {
            &spec.inputs
        };
        let in_layouts: Vec<Layout> = srcs
            .iter()
            .map(|&s| match s {
                Src::Input => input_layout.clone(),
                Src::Node(j) => nodes[j].layout.clone(),
            })
            .collect();
        let in_shape = g.src_shape(spec.inputs[0]).to_vec();
        let len: usize = spec.shape.iter().product();
        let inputs: Vec<usize> = srcs.iter().map(|&s| src_slot(&nodes, s)).collect();
        let a = &spec.attrs;
        let vec_of = |field: &str| -> Result<Option<Vec<V>>> {
            match params.get(field) {
                None => Ok(None),
                Some(t) => V::from_tensor(&t.data)
                    .map(Some)
                    .ok_or_else(|| internal(name, opn, &format!("tensor '{field}' dtype"))),
            }
        };
        let req = |field: &str| -> Result<Vec<V>> {
            vec_of(field)?.ok_or_else(|| internal(name, opn, &format!("missing '{field}'")))
        };

        let mut layout = layout_of(&spec.shape);
        let mut slot = slot_len.len();
        let mut fanout_total = 0u64;
        let mut dense_macs = 0u64;
        let op: Op<V> = match spec.op {
            OpKind::Linear => {
                let wt = params
                    .get("weight")
                    .ok_or_else(|| internal(name, opn, "missing weight"))?;
                let (n_in, n_out) = (a.in_features, a.out_features);
                let lin = &in_layouts[0];
                // engine element k = i*n_out + o  <-  file element o*n_in + torch(i)
                let w = weights_from(
                    &wt.data,
                    |k| (k % n_out) * n_in + lin.torch_index(k / n_out),
                    n_in * n_out,
                )
                .ok_or_else(|| internal(name, opn, "weight dtype"))?;
                let mut w_abs = 0i64;
                let mut w_max = 0i64;
                if g.precision == Precision::Int {
                    for o in 0..n_out {
                        let s: i64 = (0..n_in).map(|i| abs_of(&wt.data, o * n_in + i)).sum();
                        w_abs = w_abs.max(s);
                    }
                    w_max = (0..n_in * n_out)
                        .map(|k| abs_of(&wt.data, k))
                        .max()
                        .unwrap_or(0);
                }
                let bias = vec_of("bias")?;
                let bias_abs = params
                    .get("bias")
                    .map(|t| (0..n_out).map(|k| abs_of(&t.data, k)).max().unwrap_or(0))
                    .unwrap_or(0);
                fanout_total = (n_in as u64) * (n_out as u64);
                dense_macs = fanout_total;
                Op::Linear(LinearOp {
                    w,
                    n_out,
                    bias,
                    w_abs,
                    bias_abs,
                    w_max,
                })
            }
            OpKind::Conv2d | OpKind::Conv1d => {
                // a 1-d conv is a 2-d conv of height 1 (weights [out, in, k] = [out, in, 1, k])
                let wt = params
                    .get("weight")
                    .ok_or_else(|| internal(name, opn, "missing weight"))?;
                let (c, h, w) = chw(&in_shape).ok_or_else(|| internal(name, opn, "rank"))?;
                let (_, ho, wo) = chw(&spec.shape).ok_or_else(|| internal(name, opn, "rank"))?;
                let (co, kh, kw) = (a.out_channels, a.kernel[0], a.kernel[1]);
                let geom = Geom {
                    c,
                    h,
                    w,
                    co,
                    ho,
                    wo,
                    kh,
                    kw,
                    sh: a.stride[0],
                    sw: a.stride[1],
                    ph: a.padding[0],
                    pw: a.padding[1],
                };
                let n = co * c * kh * kw;
                // engine [c][ky][kx][oc]  <-  file [oc][c][ky][kx]
                let wts = weights_from(
                    &wt.data,
                    |k| {
                        let oc = k % co;
                        let r = k / co; // (c*kh + ky)*kw + kx
                        oc * c * kh * kw + r
                    },
                    n,
                )
                .ok_or_else(|| internal(name, opn, "weight dtype"))?;
                let mut w_abs = 0i64;
                let mut w_max = 0i64;
                if g.precision == Precision::Int {
                    let per = c * kh * kw;
                    for oc in 0..co {
                        let s: i64 = (0..per).map(|r| abs_of(&wt.data, oc * per + r)).sum();
                        w_abs = w_abs.max(s);
                    }
                    w_max = (0..n).map(|k| abs_of(&wt.data, k)).max().unwrap_or(0);
                }
                let fanout: Vec<u32> = (0..h * w)
                    .map(|p| geom.fanout(p / w, p % w) as u32)
                    .collect();
                let pos_total: u64 = fanout.iter().map(|&f| f as u64).sum();
                fanout_total = pos_total * c as u64 * co as u64;
                dense_macs = fanout_total;
                let bias = vec_of("bias")?;
                let bias_abs = params
                    .get("bias")
                    .map(|t| (0..co).map(|k| abs_of(&t.data, k)).max().unwrap_or(0))
                    .unwrap_or(0);
                let packed = match &wts {
                    Weights::I8(k) if vnni::cpu_has() && vnni::fits(&geom) => {
                        Some(vnni::pack_kernel(k, &geom))
                    }
                    _ => None,
                };
                Op::Conv(ConvOp {
                    w: wts,
                    g: geom,
                    bias,
                    fanout,
                    w_abs,
                    bias_abs,
                    w_max,
                    packed,
                })
            }
            OpKind::AvgPool2d | OpKind::SumPool2d | OpKind::AvgPool1d | OpKind::SumPool1d => {
                let (c, h, w) = chw(&in_shape).ok_or_else(|| internal(name, opn, "rank"))?;
                let (_, ho, wo) = chw(&spec.shape).ok_or_else(|| internal(name, opn, "rank"))?;
                let geom = Geom {
                    c,
                    h,
                    w,
                    co: c,
                    ho,
                    wo,
                    kh: a.kernel[0],
                    kw: a.kernel[1],
                    sh: a.stride[0],
                    sw: a.stride[1],
                    ph: 0,
                    pw: 0,
                };
                let fanout: Vec<u32> = (0..h * w)
                    .map(|p| geom.fanout(p / w, p % w) as u32)
                    .collect();
                fanout_total = fanout.iter().map(|&f| f as u64).sum::<u64>() * c as u64;
                let uniform_fanout = match fanout.first() {
                    Some(&f) if fanout.iter().all(|&v| v == f) => Some(f),
                    _ => None,
                };
                Op::Pool(PoolOp {
                    avg: spec.op.is_avg_pool(),
                    g: geom,
                    m: a.m,
                    f: a.f,
                    fanout,
                    uniform_fanout,
                })
            }
            OpKind::Flatten => {
                slot = inputs[0];
                layout = match &in_layouts[0] {
                    Layout::Hwc { c, h, w } => {
                        let (c, h, w) = (*c, *h, *w);
                        let perm: Vec<u32> = (0..c * h * w)
                            .map(|k| {
                                let ch = k % c;
                                let pos = k / c;
                                (ch * h * w + pos) as u32
                            })
                            .collect();
                        if c == 1 {
                            Layout::Flat { perm: None }
                        } else {
                            Layout::Flat {
                                perm: Some(Arc::new(perm)),
                            }
                        }
                    }
                    other => other.clone(),
                };
                Op::Flatten
            }
            OpKind::Add => {
                layout = in_layouts[0].clone();
                let mut maps = Vec::with_capacity(inputs.len());
                // inverse of the output layout: torch index -> internal index
                let inv: Option<Vec<u32>> = match &layout {
                    Layout::Flat { perm: Some(p) } => {
                        let mut inv = vec![0u32; p.len()];
                        for (k, &t) in p.iter().enumerate() {
                            inv[t as usize] = k as u32;
                        }
                        Some(inv)
                    }
                    _ => None,
                };
                for il in &in_layouts {
                    if *il == layout {
                        maps.push(None);
                    } else {
                        let m: Vec<u32> = (0..len)
                            .map(|k| {
                                let t = il.torch_index(k);
                                match &inv {
                                    Some(inv) => inv[t],
                                    None => t as u32,
                                }
                            })
                            .collect();
                        maps.push(Some(m));
                    }
                }
                Op::Add(AddOp { maps })
            }
            OpKind::Scale => {
                layout = in_layouts[0].clone();
                let mul_field = if g.precision == Precision::Int {
                    "m"
                } else {
                    "scale"
                };
                let (mul, period) = expand_param(&req(mul_field)?, &layout, len);
                let shift_raw = vec_of("shift")?;
                let zero_shift = shift_raw
                    .as_ref()
                    .is_none_or(|s| s.iter().all(|v| !v.is_nonzero()));
                let shift = match &shift_raw {
                    Some(s) => expand_param(s, &layout, len).0,
                    None => vec![V::ZERO; period],
                };
                Op::Scale(ScaleOp {
                    mul,
                    shift,
                    zero_shift,
                    f: a.f,
                    period,
                })
            }
            // the value is written at the end of each step (`step::advance_delays`)
            OpKind::Delay => Op::Delay,
            OpKind::DsrIf | OpKind::DsrLif | OpKind::DspikeLif | OpKind::Integrate => {
                layout = in_layouts[0].clone();
                let int = g.precision == Precision::Int;
                let ex = |field: &str| -> Result<(Vec<V>, usize)> {
                    Ok(expand_param(&req(field)?, &layout, len))
                };
                let (params, period) = match spec.op {
                    OpKind::DsrIf => {
                        let (theta, p) = ex("theta")?;
                        let (fire, _) = ex("fire")?;
                        (NeuronParams::If { theta, fire }, p)
                    }
                    OpKind::DsrLif => {
                        let (theta, p) = ex("theta")?;
                        let (fire, _) = ex("fire")?;
                        let (leak, _) = ex(if int { "leak_m" } else { "leak" })?;
                        let (gain, _) = ex(if int { "gain_m" } else { "gain" })?;
                        (
                            NeuronParams::Lif {
                                theta,
                                fire,
                                leak,
                                gain,
                                f: a.f,
                            },
                            p,
                        )
                    }
                    OpKind::DspikeLif => {
                        let (fire, p) = ex("fire")?;
                        let (leak, _) = ex(if int { "leak_m" } else { "leak" })?;
                        (NeuronParams::Dspike { fire, leak, f: a.f }, p)
                    }
                    _ => match vec_of(if int { "leak_m" } else { "leak" })? {
                        Some(l) => {
                            let (leak, p) = expand_param(&l, &layout, len);
                            (NeuronParams::LeakyIntegrate { leak, f: a.f }, p)
                        }
                        None => (NeuronParams::Integrate, len.max(1)),
                    },
                };
                Op::Neuron(NeuronOp { params, period })
            }
        };
        if slot == slot_len.len() {
            slot_len.push(len);
        }
        nodes.push(Node {
            name: spec.name.clone(),
            kind: spec.op,
            shape: spec.shape.clone(),
            len,
            layout,
            inputs,
            slot,
            op,
            fanout_total,
            dense_macs,
        });
    }

    // Delays: the source's value of each step, in the delay's layout.
    let mut delays = Vec::new();
    for (ni, spec) in g.nodes.iter().enumerate() {
        if spec.op != OpKind::Delay {
            continue;
        }
        let (src_slot, src_layout) = match spec.inputs[0] {
            Src::Input => (0, input_layout.clone()),
            Src::Node(j) => (nodes[j].slot, nodes[j].layout.clone()),
        };
        let n = &nodes[ni];
        delays.push(DelayLink {
            node: ni,
            src: src_slot,
            dst: n.slot,
            map: relayout_map(&src_layout, &n.layout, n.len),
        });
    }

    let n_slots = slot_len.len();
    let mut slot_binary = vec![false; n_slots];
    for n in &nodes {
        if n.kind.is_spiking() {
            slot_binary[n.slot] = true;
        }
    }
    for d in &delays {
        slot_binary[d.dst] = slot_binary[d.src];
    }
    let plan_static = plan(&nodes, &delays, n_slots, Kind::Static);
    let plan_dynamic = plan(&nodes, &delays, n_slots, Kind::Sparse);
    let max_len = slot_len.iter().copied().max().unwrap_or(1).max(1);
    let per_step: usize = slot_len.iter().sum::<usize>().max(1) * 4;
    // a delay reads its source's previous step, so with delays the nodes run step by step
    // the largest pass of one node over a chunk: its inputs' and its own values, per step
    let pass: usize = nodes
        .iter()
        .map(|n| (n.inputs.iter().map(|&s| slot_len[s]).sum::<usize>() + slot_len[n.slot]) * 4)
        .max()
        .unwrap_or(4)
        .max(4);
    let chunk = if delays.is_empty() {
        (CHUNK_BYTES / per_step)
            .min(PASS_BYTES / pass)
            .clamp(1, MAX_CHUNK)
    } else {
        1
    };
    // sanity: layouts of [C,H,W] and [C, L] nodes are HWC
    for n in &nodes {
        if n.shape.len() >= 2 && !matches!(n.layout, Layout::Hwc { .. }) {
            return Err(internal(&n.name, n.kind.as_str(), "layout"));
        }
        if n.shape.len() == 1 && matches!(n.layout, Layout::Hwc { .. }) {
            return Err(internal(&n.name, n.kind.as_str(), "layout"));
        }
    }
    Ok(Network {
        precision: g.precision,
        input_shape: g.input.shape.clone(),
        input_layout,
        input_len,
        nodes,
        slot_len,
        slot_binary,
        output: g.output,
        plan_static,
        plan_dynamic,
        max_len,
        chunk,
        delays,
    })
}

/// Value kinds of every slot when the input has kind `input` (doc §3). A delay has its
/// source's kind (dense for a static source: zero at the first step, then the value); as a
/// source may depend on its delay, delays start sparse and turn dense until that holds.
fn plan<V>(nodes: &[Node<V>], delays: &[DelayLink], n_slots: usize, input: Kind) -> Plan {
    let mut delay_kind: Vec<Kind> = vec![Kind::Sparse; delays.len()];
    loop {
        let p = plan_once(nodes, delays, &delay_kind, n_slots, input);
        let mut changed = false;
        for (d, dk) in delays.iter().zip(delay_kind.iter_mut()) {
            let want = match p.slot_kind[d.src] {
                Kind::Sparse => Kind::Sparse,
                _ => Kind::Dense,
            };
            if want != *dk {
                *dk = want;
                changed = true;
            }
        }
        if !changed {
            return p;
        }
    }
}

fn plan_once<V>(
    nodes: &[Node<V>],
    delays: &[DelayLink],
    delay_kind: &[Kind],
    n_slots: usize,
    input: Kind,
) -> Plan {
    let mut k = vec![Kind::Dense; n_slots];
    k[0] = input;
    for (ni, n) in nodes.iter().enumerate() {
        if matches!(n.op, Op::Delay) {
            let i = delays.iter().position(|d| d.node == ni).unwrap_or(0);
            k[n.slot] = delay_kind.get(i).copied().unwrap_or(Kind::Dense);
            continue;
        }
        let ins: Vec<Kind> = n.inputs.iter().map(|&s| k[s]).collect();
        let all = |want: Kind| ins.iter().all(|&x| x == want);
        let kind = match &n.op {
            Op::Flatten => ins[0],
            Op::Linear(_) | Op::Conv(_) => {
                if all(Kind::Static) {
                    Kind::Static
                } else {
                    Kind::Dense
                }
            }
            Op::Pool(_) | Op::Add(_) => {
                if all(Kind::Static) {
                    Kind::Static
                } else if all(Kind::Sparse) {
                    Kind::Sparse
                } else {
                    Kind::Dense
                }
            }
            Op::Scale(s) => {
                if all(Kind::Static) {
                    Kind::Static
                } else if all(Kind::Sparse) && s.zero_shift {
                    Kind::Sparse
                } else {
                    Kind::Dense
                }
            }
            Op::Neuron(_) => {
                if n.kind == OpKind::Integrate {
                    Kind::Dense
                } else {
                    Kind::Sparse
                }
            }
            Op::Delay => Kind::Dense,
        };
        k[n.slot] = kind;
    }
    Plan { slot_kind: k }
}

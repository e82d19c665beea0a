//! The per-op step of [`super::compile`]: one function per op family, each turning a node's
//! attributes and tensors into its engine [`Op`], the layout of its value and its counts.

use std::sync::Arc;

use super::{chw, layout_of, NodeCx, OpStep};
use crate::engine::network::{AddOp, ConvOp, Layout, LinearOp, NeuronOp, Op, PoolOp, ScaleOp};
use crate::engine::value::FromTensor;
use crate::error::Result;
use crate::format::{NodeParams, OpKind, TensorData};
use crate::kernels::{vnni, Geom};
use crate::neurons::NeuronParams;
use crate::numeric::{Value, WeightBuf, Weights};

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

/// Overflow bounds of an int weight tensor of `rows` output rows of `per` file elements each:
/// the largest row sum of `|w|` and the largest `|w|` (both 0 for float weights).
fn weight_bounds(cx: &NodeCx<'_>, t: &TensorData, rows: usize, per: usize) -> (i64, i64) {
    if !cx.int() {
        return (0, 0);
    }
    let mut w_abs = 0i64;
    for r in 0..rows {
        let s: i64 = (0..per).map(|i| abs_of(t, r * per + i)).sum();
        w_abs = w_abs.max(s);
    }
    let w_max = (0..rows * per).map(|k| abs_of(t, k)).max().unwrap_or(0);
    (w_abs, w_max)
}

/// The largest `|bias|` over `n` outputs (0 without a bias or for float precision).
fn bias_bound(params: &NodeParams, n: usize) -> i64 {
    params
        .get("bias")
        .map(|t| (0..n).map(|k| abs_of(&t.data, k)).max().unwrap_or(0))
        .unwrap_or(0)
}

/// Output positions reached from each input position `(y, x)` of `g` (row-major).
fn fanouts(g: &Geom) -> Vec<u32> {
    (0..g.h * g.w)
        .map(|p| g.fanout(p / g.w, p % g.w) as u32)
        .collect()
}

/// A linear node: weights as `[in][out]` rows in the input's internal order.
pub(super) fn compile_linear<V: FromTensor>(cx: &NodeCx<'_>) -> Result<OpStep<V>> {
    let wt = cx.weight()?;
    let a = &cx.spec.attrs;
    let (n_in, n_out) = (a.in_features, a.out_features);
    let lin = &cx.in_layouts[0];
    // engine element k = i*n_out + o  <-  file element o*n_in + torch(i)
    let w = weights_from(
        &wt.data,
        |k| (k % n_out) * n_in + lin.torch_index(k / n_out),
        n_in * n_out,
    )
    .ok_or_else(|| cx.err("weight dtype"))?;
    let (w_abs, w_max) = weight_bounds(cx, &wt.data, n_out, n_in);
    let bias = cx.vec_of("bias")?;
    let bias_abs = bias_bound(cx.params, n_out);
    let fanout_total = (n_in as u64) * (n_out as u64);
    let op = Op::Linear(LinearOp {
        w,
        n_out,
        bias,
        w_abs,
        bias_abs,
        w_max,
    });
    Ok(OpStep::counted(op, layout_of(&cx.spec.shape), fanout_total))
}

/// A 1-d or 2-d conv node; a 1-d conv is a 2-d conv of height 1 (weights `[out, in, k]` =
/// `[out, in, 1, k]`). Weights as `[c][ky][kx][oc]`, VNNI-packed when that kernel runs.
pub(super) fn compile_conv<V: FromTensor>(cx: &NodeCx<'_>) -> Result<OpStep<V>> {
    let wt = cx.weight()?;
    let a = &cx.spec.attrs;
    let (c, h, w) = chw(cx.in_shape).ok_or_else(|| cx.err("rank"))?;
    let (_, ho, wo) = chw(&cx.spec.shape).ok_or_else(|| cx.err("rank"))?;
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
    let per = c * kh * kw;
    // engine [c][ky][kx][oc]  <-  file [oc][c][ky][kx]
    let wts = weights_from(
        &wt.data,
        |k| {
            let oc = k % co;
            let r = k / co; // (c*kh + ky)*kw + kx
            oc * per + r
        },
        co * per,
    )
    .ok_or_else(|| cx.err("weight dtype"))?;
    let (w_abs, w_max) = weight_bounds(cx, &wt.data, co, per);
    let fanout = fanouts(&geom);
    let pos_total: u64 = fanout.iter().map(|&f| f as u64).sum();
    let fanout_total = pos_total * c as u64 * co as u64;
    let bias = cx.vec_of("bias")?;
    let bias_abs = bias_bound(cx.params, co);
    let packed = match &wts {
        Weights::I8(k) if vnni::cpu_has() && vnni::fits(&geom) => Some(vnni::pack_kernel(k, &geom)),
        _ => None,
    };
    let op = Op::Conv(ConvOp {
        w: wts,
        g: geom,
        bias,
        fanout,
        w_abs,
        bias_abs,
        w_max,
        packed,
    });
    Ok(OpStep::counted(op, layout_of(&cx.spec.shape), fanout_total))
}

/// An average or sum pool node, 1-d or 2-d (no padding; no dense MACs).
pub(super) fn compile_pool<V>(cx: &NodeCx<'_>) -> Result<OpStep<V>> {
    let a = &cx.spec.attrs;
    let (c, h, w) = chw(cx.in_shape).ok_or_else(|| cx.err("rank"))?;
    let (_, ho, wo) = chw(&cx.spec.shape).ok_or_else(|| cx.err("rank"))?;
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
    let fanout = fanouts(&geom);
    let fanout_total = fanout.iter().map(|&f| f as u64).sum::<u64>() * c as u64;
    let uniform_fanout = match fanout.first() {
        Some(&f) if fanout.iter().all(|&v| v == f) => Some(f),
        _ => None,
    };
    let op = Op::Pool(PoolOp {
        avg: cx.spec.op.is_avg_pool(),
        g: geom,
        m: a.m,
        f: a.f,
        fanout,
        uniform_fanout,
    });
    let mut s = OpStep::new(op, layout_of(&cx.spec.shape));
    s.fanout_total = fanout_total;
    Ok(s)
}

/// A flatten node: shares its input's slot; an HWC input is read through a permutation.
pub(super) fn compile_flatten<V>(cx: &NodeCx<'_>) -> OpStep<V> {
    let layout = match &cx.in_layouts[0] {
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
    let mut s = OpStep::new(Op::Flatten, layout);
    s.shares = Some(cx.inputs[0]);
    s
}

/// An add node: in the first input's layout; every other input read through a map when its
/// layout differs.
pub(super) fn compile_add<V>(cx: &NodeCx<'_>) -> OpStep<V> {
    let layout = cx.in_layouts[0].clone();
    let mut maps = Vec::with_capacity(cx.inputs.len());
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
    for il in &cx.in_layouts {
        if *il == layout {
            maps.push(None);
        } else {
            let m: Vec<u32> = (0..cx.len)
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
    OpStep::new(Op::Add(AddOp { maps }), layout)
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

/// A scale node: per-channel multiplier (`m` for int, `scale` for float) and shift, expanded
/// to one period of the input's layout.
pub(super) fn compile_scale<V: Value + FromTensor>(cx: &NodeCx<'_>) -> Result<OpStep<V>> {
    let layout = cx.in_layouts[0].clone();
    let mul_field = if cx.int() { "m" } else { "scale" };
    let (mul, period) = expand_param(&cx.req(mul_field)?, &layout, cx.len);
    let shift_raw = cx.vec_of::<V>("shift")?;
    let zero_shift = shift_raw
        .as_ref()
        .is_none_or(|s| s.iter().all(|v| !v.is_nonzero()));
    let shift = match &shift_raw {
        Some(s) => expand_param(s, &layout, cx.len).0,
        None => vec![V::ZERO; period],
    };
    let op = Op::Scale(ScaleOp {
        mul,
        shift,
        zero_shift,
        f: cx.spec.attrs.f,
        period,
    });
    Ok(OpStep::new(op, layout))
}

/// A neuron node (DSR IF/LIF, Dspike LIF, integrate): its law's parameters expanded to one
/// period of the input's layout.
pub(super) fn compile_neuron<V: FromTensor + Copy>(cx: &NodeCx<'_>) -> Result<OpStep<V>> {
    let layout = cx.in_layouts[0].clone();
    let int = cx.int();
    let f = cx.spec.attrs.f;
    let ex = |field: &str| -> Result<(Vec<V>, usize)> {
        Ok(expand_param(&cx.req(field)?, &layout, cx.len))
    };
    let leak_field = if int { "leak_m" } else { "leak" };
    let (params, period) = match cx.spec.op {
        OpKind::DsrIf => {
            let (theta, p) = ex("theta")?;
            let (fire, _) = ex("fire")?;
            (NeuronParams::If { theta, fire }, p)
        }
        OpKind::DsrLif => {
            let (theta, p) = ex("theta")?;
            let (fire, _) = ex("fire")?;
            let (leak, _) = ex(leak_field)?;
            let (gain, _) = ex(if int { "gain_m" } else { "gain" })?;
            let law = NeuronParams::Lif {
                theta,
                fire,
                leak,
                gain,
                f,
            };
            (law, p)
        }
        OpKind::DspikeLif => {
            let (fire, p) = ex("fire")?;
            let (leak, _) = ex(leak_field)?;
            (NeuronParams::Dspike { fire, leak, f }, p)
        }
        _ => match cx.vec_of(leak_field)? {
            Some(l) => {
                let (leak, p) = expand_param(&l, &layout, cx.len);
                (NeuronParams::LeakyIntegrate { leak, f }, p)
            }
            None => (NeuronParams::Integrate, cx.len.max(1)),
        },
    };
    let op = Op::Neuron(NeuronOp { params, period });
    Ok(OpStep::new(op, layout))
}

//! Shape inference: the attributes each op needs and the per-sample shape of its output.

use super::graph::{checked_numel, fmt_shape, Attrs, OpKind, MAX_ELEMS, SIZE_MAX};
use super::json::NodeCtx;
use crate::error::Result;
use crate::numeric::Precision;

/// The attributes of a node of kind `op` and the per-sample shape of its output, given the
/// shapes of its inputs (`in_shapes[0]` the first); one function per op family below.
pub(crate) fn infer_node(
    ctx: &NodeCtx<'_>,
    op: OpKind,
    precision: Precision,
    in_shapes: &[&[usize]],
) -> Result<(Vec<usize>, Attrs)> {
    let mut a = Attrs::default();
    let x = in_shapes[0];
    let int = precision == Precision::Int;
    let shape = match op {
        OpKind::Conv1d => infer_conv1d(ctx, &mut a, int, x)?,
        OpKind::AvgPool1d | OpKind::SumPool1d => infer_pool1d(ctx, &mut a, op, int, x)?,
        OpKind::Delay => ctx.shape("shape", 1, SIZE_MAX)?,
        OpKind::Linear => infer_linear(ctx, &mut a, int, x)?,
        OpKind::Conv2d => infer_conv2d(ctx, &mut a, int, x)?,
        OpKind::AvgPool2d | OpKind::SumPool2d => infer_pool2d(ctx, &mut a, op, int, x)?,
        OpKind::Flatten => infer_flatten(ctx, x)?,
        OpKind::Add => infer_add(ctx, in_shapes)?,
        OpKind::Scale | OpKind::DsrLif | OpKind::DspikeLif => {
            if int {
                a.f = ctx.int_range("f", 1, 31)? as u32;
            }
            x.to_vec()
        }
        OpKind::Integrate => infer_integrate(ctx, &mut a, int, x)?,
        OpKind::DsrIf => x.to_vec(),
    };
    Ok((shape, a))
}

/// `(C, H, W)` of an input that `what` needs as `[C, H, W]`.
fn need_rank3(ctx: &NodeCtx<'_>, x: &[usize], what: &str) -> Result<(usize, usize, usize)> {
    if x.len() != 3 {
        return Err(ctx.err(format!(
            "{what} needs a [C, H, W] input, got shape {}",
            fmt_shape(x)
        )));
    }
    Ok((x[0], x[1], x[2]))
}

/// A conv's input `x` with `c` channels must have `in_channels` of them.
fn check_in_channels(ctx: &NodeCtx<'_>, x: &[usize], c: usize, in_channels: usize) -> Result<()> {
    if c != in_channels {
        return Err(ctx.err(format!(
            "input shape {} has {c} channels, in_channels = {in_channels}",
            fmt_shape(x)
        )));
    }
    Ok(())
}

/// `(C, L)` of an input that `what` needs as `[C, L]`.
fn need_rank2(ctx: &NodeCtx<'_>, x: &[usize], what: &str) -> Result<(usize, usize)> {
    if x.len() != 2 {
        return Err(ctx.err(format!(
            "{what} needs a [C, L] input, got shape {}",
            fmt_shape(x)
        )));
    }
    Ok((x[0], x[1]))
}

fn infer_conv1d(ctx: &NodeCtx<'_>, a: &mut Attrs, int: bool, x: &[usize]) -> Result<Vec<usize>> {
    a.in_channels = ctx.int_range("in_channels", 1, SIZE_MAX)? as usize;
    a.out_channels = ctx.int_range("out_channels", 1, SIZE_MAX)? as usize;
    a.kernel = [1, ctx.int_range("kernel", 1, SIZE_MAX)? as usize];
    a.stride = [1, ctx.int_range("stride", 1, SIZE_MAX)? as usize];
    a.padding = [0, ctx.int_range("padding", 0, SIZE_MAX)? as usize];
    if int {
        a.weight_bits = weight_bits(ctx)?;
    }
    let (c, l) = need_rank2(ctx, x, "conv1d")?;
    check_in_channels(ctx, x, c, a.in_channels)?;
    let lp = l + 2 * a.padding[1];
    if lp < a.kernel[1] {
        return Err(ctx.err(format!(
            "kernel {} is larger than the padded input length {lp}",
            a.kernel[1]
        )));
    }
    let wn = [a.out_channels, a.in_channels, a.kernel[1]];
    if checked_numel(&wn).is_none() {
        return Err(ctx.err("weight tensor is too large"));
    }
    Ok(vec![a.out_channels, (lp - a.kernel[1]) / a.stride[1] + 1])
}

fn infer_pool1d(
    ctx: &NodeCtx<'_>,
    a: &mut Attrs,
    op: OpKind,
    int: bool,
    x: &[usize],
) -> Result<Vec<usize>> {
    a.kernel = [1, ctx.int_range("kernel", 1, SIZE_MAX)? as usize];
    a.stride = [1, ctx.int_range("stride", 1, SIZE_MAX)? as usize];
    if int && op == OpKind::AvgPool1d {
        a.m = ctx.int_range("m", 0, i32::MAX as i64)? as i32;
        a.f = ctx.int_range("f", 1, 31)? as u32;
    }
    let (c, l) = need_rank2(ctx, x, op.as_str())?;
    if l < a.kernel[1] {
        return Err(ctx.err(format!(
            "kernel {} is larger than the input length {l}",
            a.kernel[1]
        )));
    }
    Ok(vec![c, (l - a.kernel[1]) / a.stride[1] + 1])
}

fn infer_linear(ctx: &NodeCtx<'_>, a: &mut Attrs, int: bool, x: &[usize]) -> Result<Vec<usize>> {
    a.in_features = ctx.int_range("in_features", 1, SIZE_MAX)? as usize;
    a.out_features = ctx.int_range("out_features", 1, SIZE_MAX)? as usize;
    if int {
        a.weight_bits = weight_bits(ctx)?;
    }
    if x.len() != 1 || x[0] != a.in_features {
        return Err(ctx.err(format!(
            "input shape {} does not match in_features = {} (linear needs a [F] input)",
            fmt_shape(x),
            a.in_features
        )));
    }
    if a.in_features
        .checked_mul(a.out_features)
        .is_none_or(|n| n > MAX_ELEMS)
    {
        return Err(ctx.err("weight matrix is too large"));
    }
    Ok(vec![a.out_features])
}

fn infer_conv2d(ctx: &NodeCtx<'_>, a: &mut Attrs, int: bool, x: &[usize]) -> Result<Vec<usize>> {
    a.in_channels = ctx.int_range("in_channels", 1, SIZE_MAX)? as usize;
    a.out_channels = ctx.int_range("out_channels", 1, SIZE_MAX)? as usize;
    a.kernel = ctx.pair("kernel", 1, SIZE_MAX)?;
    a.stride = ctx.pair("stride", 1, SIZE_MAX)?;
    a.padding = ctx.pair("padding", 0, SIZE_MAX)?;
    if int {
        a.weight_bits = weight_bits(ctx)?;
    }
    let (c, h, w) = need_rank3(ctx, x, "conv2d")?;
    check_in_channels(ctx, x, c, a.in_channels)?;
    let hp = h + 2 * a.padding[0];
    let wp = w + 2 * a.padding[1];
    if hp < a.kernel[0] || wp < a.kernel[1] {
        return Err(ctx.err(format!(
            "kernel {} is larger than the padded input {}x{}",
            fmt_shape(&a.kernel),
            hp,
            wp
        )));
    }
    let wn = [a.out_channels, a.in_channels, a.kernel[0], a.kernel[1]];
    if checked_numel(&wn).is_none() {
        return Err(ctx.err("weight tensor is too large"));
    }
    Ok(vec![
        a.out_channels,
        (hp - a.kernel[0]) / a.stride[0] + 1,
        (wp - a.kernel[1]) / a.stride[1] + 1,
    ])
}

fn infer_pool2d(
    ctx: &NodeCtx<'_>,
    a: &mut Attrs,
    op: OpKind,
    int: bool,
    x: &[usize],
) -> Result<Vec<usize>> {
    a.kernel = ctx.pair("kernel", 1, SIZE_MAX)?;
    a.stride = ctx.pair("stride", 1, SIZE_MAX)?;
    if int && op == OpKind::AvgPool2d {
        a.m = ctx.int_range("m", 0, i32::MAX as i64)? as i32;
        a.f = ctx.int_range("f", 1, 31)? as u32;
    }
    let (c, h, w) = need_rank3(ctx, x, op.as_str())?;
    if h < a.kernel[0] || w < a.kernel[1] {
        return Err(ctx.err(format!(
            "kernel {} is larger than the input {}x{}",
            fmt_shape(&a.kernel),
            h,
            w
        )));
    }
    Ok(vec![
        c,
        (h - a.kernel[0]) / a.stride[0] + 1,
        (w - a.kernel[1]) / a.stride[1] + 1,
    ])
}

fn infer_flatten(ctx: &NodeCtx<'_>, x: &[usize]) -> Result<Vec<usize>> {
    if x.is_empty() {
        return Err(ctx.err(format!(
            "flatten needs a [C, H, W], [C, L] or [F] input, got shape {}",
            fmt_shape(x)
        )));
    }
    Ok(vec![x.iter().product()])
}

fn infer_add(ctx: &NodeCtx<'_>, in_shapes: &[&[usize]]) -> Result<Vec<usize>> {
    let x = in_shapes[0];
    for (k, s) in in_shapes.iter().enumerate().skip(1) {
        if *s != x {
            return Err(ctx.err(format!(
                "input {k} has shape {}, input 0 has shape {} (add needs identical shapes)",
                fmt_shape(s),
                fmt_shape(x)
            )));
        }
    }
    Ok(x.to_vec())
}

fn infer_integrate(ctx: &NodeCtx<'_>, a: &mut Attrs, int: bool, x: &[usize]) -> Result<Vec<usize>> {
    // Optional leak: int precision gives it as `leak_m` with this `f` (required with
    // `leak_m`, checked with the tensors in `take_params`).
    if int {
        if let Some(f) = ctx.int_opt("f")? {
            if !(1..=31).contains(&f) {
                return Err(ctx.err(format!("attribute 'f' = {f} is out of range [1, 31]")));
            }
            a.f = f as u32;
        }
    }
    Ok(x.to_vec())
}

fn weight_bits(ctx: &NodeCtx<'_>) -> Result<u32> {
    let b = ctx.int_req("weight_bits")?;
    match b {
        4 | 8 | 16 => Ok(b as u32),
        _ => Err(ctx.err(format!("weight_bits must be 4, 8 or 16, got {b}"))),
    }
}

//! Conv2d nodes: the active inputs of a step through the kernel, by scatter when few are active
//! and by gather (output-stationary) when many are (`crate::kernels::conv`; same results).

use super::{count_weighted, narrow_into, needs_wide, split_values, wide_bias};
use crate::engine::network::{ConvOp, Kind, Node};
use crate::engine::state::{Buf, SampleOut, Scratch};
use crate::engine::step::StepCtx;
use crate::engine::team::{Team, SOLO};
use crate::engine::value::EngineValue;
use crate::error::{Result, SnnError};
use crate::kernels::{self, fill_bias, vnni};
use crate::numeric::{Mac, Value, Weight, WeightVisitor};

/// Gather rather than scatter once the step's work (SOPs) exceeds this many per window tap of
/// the output (the gather visits every tap of every output position; the scatter pays a store
/// of the accumulators per tap of every active input).
const GATHER_SOPS_PER_TAP: u64 = 12;

/// A gather step of at least this many SOPs is split across the sample's threads (below it the
/// hand-off costs more than it saves).
pub(crate) const PAR_MIN_SOPS: u64 = 1 << 15;

pub(crate) struct ConvVisit<'a, V: Value> {
    fast: bool,
    /// Output-stationary: `(dense input, position starts)`.
    gather: Option<(&'a [V], &'a [u32])>,
    unit: bool,
    /// The threads the gather is split across (by output positions).
    team: &'a Team,
    /// int8 weights: terms per 16-bit partial sum (0: no 16-bit sums).
    flush: usize,
    bias: Option<&'a [V]>,
    acc: &'a mut [V],
    acc_w: &'a mut [V::Wide],
    g: &'a kernels::Geom,
    items: &'a [u32],
    xs: Option<&'a [V]>,
    xs_w: Option<&'a [V::Wide]>,
}

impl<V: Value> WeightVisitor<V> for ConvVisit<'_, V> {
    /// Whether every part ran (a part that panicked on a helper thread is reported here).
    type Out = bool;
    fn visit<W: Weight>(self, w: &[W]) -> bool
    where
        V: Mac<W>,
        V::Wide: Mac<W>,
    {
        let (g, items) = (self.g, self.items);
        match (self.fast, self.gather) {
            (true, Some((x, starts))) => {
                let inp = kernels::Active {
                    x,
                    nz: items,
                    starts,
                    unit: self.unit,
                };
                let (bias, flush) = (self.bias, self.flush);
                let run = |a: &mut [V], first: usize| {
                    if flush > 0 {
                        if let (Some(a32), Some(w8), Some(x32)) =
                            (V::as_i32_mut(a), W::as_i8(w), V::as_i32(x))
                        {
                            let inp = kernels::Active {
                                x: x32,
                                nz: inp.nz,
                                starts: inp.starts,
                                unit: inp.unit,
                            };
                            let b32 = bias.and_then(V::as_i32);
                            kernels::conv_gather_i16(a32, w8, g, inp, b32, first, flush);
                            return;
                        }
                    }
                    kernels::conv_gather::<V, W>(a, w, g, inp, bias, first)
                };
                by_positions(self.team, self.acc, g, &run)
            }
            (true, None) => {
                kernels::conv_scatter::<V, W>(self.acc, w, g, items, self.xs);
                true
            }
            (false, _) => {
                kernels::conv_scatter::<V::Wide, W>(self.acc_w, w, g, items, self.xs_w);
                true
            }
        }
    }
}

/// Runs `run(part, first)` over the conv outputs `acc` (`co` values per output position), split
/// by output positions across `team` (in one piece for a team of one); `first` is the part's
/// first position. Returns `false` if a part panicked on a helper thread.
fn by_positions<A: Send>(
    team: &Team,
    acc: &mut [A],
    g: &kernels::Geom,
    run: &(dyn Fn(&mut [A], usize) + Sync),
) -> bool {
    // whole positions per part (`co` values each); the caller chose the team by the step's work
    split_values(team, acc, g.co, 0, &|a: &mut [A], first: usize| {
        run(a, first / g.co.max(1));
        true
    })
    .is_some()
}

/// A part of a conv step panicked on a helper thread (its outputs are incomplete).
fn part_failed<V: Value>(node: &Node<V>) -> SnnError {
    SnnError::Internal(format!("a thread of conv node '{}' failed", node.name))
}

/// Whether a dense conv step splits across threads by output channels rather than positions:
/// when the kernel is at least as large as the packed input, so that each thread streaming
/// only its channels' slice of the kernel saves more than the positions' split would.
fn split_by_channels(g: &kernels::Geom, width: usize) -> bool {
    let cp = vnni::padded_channels(g.c);
    let kernel = g.kh * g.kw * cp * g.co;
    let input = (g.h + 2 * g.ph) * (g.w + 2 * g.pw) * cp;
    kernel >= input && vnni::channel_groups(g.co) >= width
}

/// Terms per 16-bit partial sum of the int8 gather: as many as keep `|sum| <= i16::MAX` for
/// the step's largest input and the node's largest weight; 0 (no 16-bit sums) when fewer than
/// 8 would fit or the node is not integer.
fn narrow_flush(w_max: i64, max_x: i64) -> usize {
    let m = w_max.saturating_mul(max_x);
    if m <= 0 {
        return 0;
    }
    let n = i16::MAX as i64 / m;
    if n >= 8 {
        n as usize
    } else {
        0
    }
}

/// Inputs of at least one in this many active go through the dense int8 kernel (when it is
/// available): below that, listing the active inputs costs less than visiting every window.
/// Measured crossover (criterion, `benches/kernels.rs`, one core): the dense kernel runs about
/// 100 G MAC/s and the gather/scatter 5.5-8 G SOP/s, so they break even near 5 % activity
/// (32 -> 64 channels at 10 % active: 8.0 by gather, 10.5 G SOP/s equivalent dense).
const DENSE_MIN_ACTIVE_FRACTION: usize = 20;

/// One step of a conv node through the dense int8 kernel (`crate::kernels::vnni`), when it
/// applies: int8 weights packed for it, a VNNI CPU at the AVX-512 level, inputs in `0..=255`
/// and dense enough, no partial sum beyond int32. Returns whether it ran.
#[allow(clippy::too_many_arguments)]
fn run_conv_dense<V: EngineValue>(
    cx: &StepCtx<'_, V>,
    node: &Node<V>,
    op: &ConvOp<V>,
    inb: &Buf<V>,
    in_kind: Kind,
    outb: &mut Buf<V>,
    sc: &mut Scratch<V>,
    so: &mut SampleOut<'_>,
    li: usize,
) -> Result<bool> {
    let g = &op.g;
    let Some(wp) = op.packed.as_deref() else {
        return Ok(false);
    };
    if in_kind == Kind::Sparse && inb.nz.len() * DENSE_MIN_ACTIVE_FRACTION < g.c * g.h * g.w {
        return Ok(false);
    }
    let (Some(x), Some(acc)) = (V::as_i32(&inb.d), V::as_i32_mut(&mut outb.d)) else {
        return Ok(false);
    };
    if !vnni::available() {
        return Ok(false);
    }
    let (xp, occ) = (&mut sc.packed_x, &mut sc.packed_occ);
    let Some((fan, max_x)) = vnni::pack_input(x, g, &op.fanout, xp, occ) else {
        return Ok(false);
    };
    if needs_wide::<V>(op.w_abs, max_x, op.bias_abs) {
        return Ok(false);
    }
    let bias = op.bias.as_deref().and_then(V::as_i32);
    let inp = vnni::Packed { xp, occ };
    let team = if node.fanout_total >= PAR_MIN_SOPS {
        cx.team
    } else {
        &SOLO
    };
    let ran = if team.width() >= 2 && split_by_channels(g, team.width()) {
        let ok = std::cell::Cell::new(true);
        vnni::conv_dense_by_channels(acc, wp, g, &inp, bias, team.width(), &|job| {
            ok.set(ok.get() & team.split(job));
        });
        ok.get()
    } else {
        by_positions(team, acc, g, &|a: &mut [i32], first: usize| {
            vnni::conv_dense(a, wp, g, &inp, bias, first)
        })
    };
    if !ran {
        return Err(part_failed(node));
    }
    count_weighted(so, li, node, in_kind, fan * g.co as u64);
    outb.dirty = true;
    Ok(true)
}

/// One step of a conv node.
#[allow(clippy::too_many_arguments)]
pub(crate) fn run_conv<V: EngineValue>(
    cx: &StepCtx<'_, V>,
    node: &Node<V>,
    op: &ConvOp<V>,
    inb: &Buf<V>,
    in_kind: Kind,
    outb: &mut Buf<V>,
    sc: &mut Scratch<V>,
    so: &mut SampleOut<'_>,
    li: usize,
) -> Result<()> {
    if run_conv_dense(cx, node, op, inb, in_kind, outb, sc, so, li)? {
        return Ok(());
    }
    let g = &op.g;
    let binary = cx.net.slot_binary[node.inputs[0]];
    let Scratch {
        rows,
        xs,
        xs_w,
        acc_w,
        starts,
        ..
    } = sc;
    let (rows_s, xs_s) = match (rows.first_mut(), xs.first_mut()) {
        (Some(r), Some(x)) => (r, x),
        _ => return Err(SnnError::Internal("scratch".into())),
    };
    let active: &[u32] = if in_kind == Kind::Sparse {
        &inb.nz
    } else {
        kernels::collect_nonzero(&inb.d, rows_s);
        rows_s
    };
    let (fan, max_x, unit) =
        kernels::scan_active(active, &inb.d, g.c, g.h * g.w, &op.fanout, binary, starts);
    let sops = fan * g.co as u64;
    count_weighted(so, li, node, in_kind, sops);
    let n = node.len;
    outb.dirty = true;
    let wide = needs_wide::<V>(op.w_abs, max_x, op.bias_abs);
    let taps = (g.ho * g.wo * g.kh * g.kw) as u64;
    let gather = !wide && sops >= GATHER_SOPS_PER_TAP * taps;
    xs_s.clear();
    xs_w.clear();
    if !gather && !unit {
        xs_s.extend(active.iter().map(|&i| inb.d[i as usize]));
    }
    if wide {
        xs_w.extend(xs_s.iter().map(|v| v.wide()));
        wide_bias(acc_w, op.bias.as_deref(), n);
    } else if !gather {
        fill_bias(&mut outb.d, op.bias.as_deref());
    }
    let vis = ConvVisit {
        fast: !wide,
        gather: gather.then_some((inb.d.as_slice(), starts.as_slice())),
        unit,
        team: if sops >= PAR_MIN_SOPS { cx.team } else { &SOLO },
        flush: narrow_flush(op.w_max, max_x),
        bias: op.bias.as_deref(),
        acc: &mut outb.d,
        acc_w: &mut acc_w[..n],
        g,
        items: active,
        xs: if unit { None } else { Some(xs_s.as_slice()) },
        xs_w: if unit { None } else { Some(xs_w.as_slice()) },
    };
    if !V::visit_weights(&op.w, vis).map_err(|e| SnnError::Internal(e.to_string()))? {
        return Err(part_failed(node));
    }
    if wide {
        narrow_into(node, cx.g, &mut acc_w[..n], &mut outb.d)?;
    }
    Ok(())
}

//! The ops of a compiled network, one file per family, each running one node over the steps
//! of a chunk (linear) or one step (the others); and the helpers they share: the active inputs
//! of a step, the int32 bound that picks the fast or the checked accumulation, overflow errors.

pub(crate) mod add;
pub(crate) mod conv;
pub(crate) mod linear;
pub(crate) mod neuron;
pub(crate) mod pool;
pub(crate) mod scale;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use super::network::{Kind, Node};
use super::state::{Buf, SampleOut};
use super::team::Team;
use crate::error::{Result, SnnError};
use crate::kernels;
use crate::numeric::{Precision, Value};

/// Elementwise steps of at least this many values are split across the sample's team.
pub(crate) const PAR_MIN_VALUES: usize = 1 << 14;

/// Runs `f(part, first)` over `out` in one piece, or split in ranges (multiples of `align`
/// values; `first` is a range's first index) across `team` when it has at least `min` values.
/// Returns `Some(false)` if any part returned `false`, `None` if a part panicked on a helper
/// thread.
pub(crate) fn split_values<T: Send>(
    team: &Team,
    out: &mut [T],
    align: usize,
    min: usize,
    f: &(dyn Fn(&mut [T], usize) -> bool + Sync),
) -> Option<bool> {
    let (n, width) = (out.len(), team.width());
    if width < 2 || n < min || n == 0 {
        return Some(f(out, 0));
    }
    let per = n.div_ceil(width).div_ceil(align.max(1)) * align.max(1);
    let parts: Vec<Mutex<Option<&mut [T]>>> =
        out.chunks_mut(per).map(|c| Mutex::new(Some(c))).collect();
    let ok = AtomicBool::new(true);
    let ran = team.split(&|k| {
        if let Some(c) = parts.get(k).and_then(|p| p.lock().ok()?.take()) {
            if !f(c, k * per) {
                ok.store(false, Ordering::Relaxed);
            }
        }
    });
    ran.then(|| ok.into_inner())
}

pub(crate) fn overflow<V>(node: &Node<V>, step: usize, msg: impl Into<String>) -> SnnError {
    SnnError::Overflow {
        node: node.name.clone(),
        op: node.kind.as_str().to_string(),
        step,
        sample: String::new(),
        msg: msg.into(),
    }
}

/// Counts one step of a weighted (linear or conv) node, as docs/model-format.md §4 defines
/// it: with a sparse input the SOPs of its active elements (`sops`), otherwise the node's dense
/// MACs, whichever kernel did the arithmetic.
pub(crate) fn count_weighted<V>(
    so: &mut SampleOut<'_>,
    li: usize,
    node: &Node<V>,
    in_kind: Kind,
    sops: u64,
) {
    match in_kind {
        Kind::Sparse => so.sops[li] += sops,
        _ => so.macs[li] += node.fanout_total,
    }
}

/// The active input elements of a weighted node: their indices, their values (in `xs`,
/// unless all are 1), whether all are 1, and max |x|. Spike inputs (0/1 by construction) are
/// used in place, without a scan.
pub(crate) fn gather_active<'a, V: Value>(
    inb: &'a Buf<V>,
    kind: Kind,
    binary: bool,
    rows: &'a mut Vec<u32>,
    xs: &mut Vec<V>,
) -> (&'a [u32], bool, i64) {
    xs.clear();
    if kind == Kind::Sparse && binary {
        return (&inb.nz, true, 1);
    }
    let rows: &'a [u32] = if kind == Kind::Sparse {
        &inb.nz
    } else {
        kernels::collect_nonzero(&inb.d, rows);
        rows
    };
    let mut unit = true;
    let mut max_abs = 0i64;
    for &r in rows.iter() {
        let v = inb.d[r as usize];
        unit &= v == V::ONE;
        max_abs = max_abs.max(v.abs_i64());
        xs.push(v);
    }
    (rows, unit, max_abs)
}

/// The part of the i32 bound check shared by linear and conv: can `sum |w| * max|x| + |b|`
/// exceed int32? (Never for float.)
pub(crate) fn needs_wide<V: Value>(w_abs: i64, max_x: i64, bias_abs: i64) -> bool {
    if V::PRECISION == Precision::Float32 {
        return false;
    }
    let bound = (w_abs as i128) * (max_x as i128) + bias_abs as i128;
    bound > i32::MAX as i128
}

/// Finishes a wide (checked) accumulation: narrows `acc_w[..n]` into `out` and zeroes the
/// accumulators it read (the scratch space is all zeros between uses: a pool scattering its
/// window sums adds to it).
pub(crate) fn narrow_into<V: Value>(
    node: &Node<V>,
    g: usize,
    acc_w: &mut [V::Wide],
    out: &mut [V],
) -> Result<()> {
    for (k, (o, w)) in out.iter_mut().zip(acc_w.iter_mut()).enumerate() {
        let w = std::mem::take(w);
        *o = V::narrow(w).ok_or_else(|| {
            overflow(
                node,
                g,
                format!("output element {k} = {w:?} does not fit in int32"),
            )
        })?;
    }
    Ok(())
}

pub(crate) fn wide_bias<V: Value>(acc_w: &mut [V::Wide], bias: Option<&[V]>, n: usize) {
    let acc = &mut acc_w[..n];
    match bias {
        Some(b) if !b.is_empty() => {
            for ch in acc.chunks_exact_mut(b.len()) {
                for (a, &v) in ch.iter_mut().zip(b) {
                    *a = v.wide();
                }
            }
        }
        _ => acc.fill(V::Wide::default()),
    }
}

//! Linear nodes: the rows of the active inputs scattered into the outputs, every step of a
//! chunk through one group of weight columns at a time.

use super::{count_weighted, gather_active, narrow_into, needs_wide, wide_bias};
use crate::engine::network::{LinearOp, Node};
use crate::engine::state::{Buf, SampleOut, Scratch};
use crate::engine::step::ChunkCtx;
use crate::engine::value::EngineValue;
use crate::error::{Result, SnnError};
use crate::kernels::{self, fill_bias};
use crate::numeric::{Mac, Precision, Value, Weight, WeightVisitor};

/// Weight columns processed together across the steps of a chunk.
const COL_GROUP: usize = 128;

/// One step of a linear node, ready to be accumulated.
pub(crate) struct LinJob<'a, V: Value> {
    acc: &'a mut [V],
    rows: &'a [u32],
    xs: Option<&'a [V]>,
    /// Unit inputs few enough for 16-bit partial sums.
    narrow: bool,
    /// The int32 bound does not hold: accumulate in the wide type and check.
    wide: bool,
    g: usize,
}

pub(crate) struct LinearVisit<'a, 'b, V: Value> {
    node: &'b Node<V>,
    jobs: &'b mut [LinJob<'a, V>],
    n_out: usize,
    bias: Option<&'b [V]>,
    acc_w: &'b mut [V::Wide],
    xs_w: &'b mut Vec<V::Wide>,
}

impl<V: Value> WeightVisitor<V> for LinearVisit<'_, '_, V> {
    type Out = Result<()>;
    fn visit<W: Weight>(self, w: &[W]) -> Result<()>
    where
        V: Mac<W>,
        V::Wide: Mac<W>,
    {
        let n = self.n_out;
        // Fast jobs: one group of columns at a time, every step of the chunk through it.
        if self.jobs.iter().any(|j| !j.wide) {
            let mut c0 = 0;
            while c0 < n {
                let c1 = (c0 + COL_GROUP).min(n);
                let wg = w.get(c0..).unwrap_or(&[]);
                for job in self.jobs.iter_mut().filter(|j| !j.wide) {
                    let acc = &mut job.acc[c0..c1];
                    if job.narrow {
                        if let (Some(acc), Some(w8)) = (V::as_i32_mut(acc), W::as_i8(wg)) {
                            kernels::linear_rows_i16(acc, w8, n, job.rows);
                            continue;
                        }
                    }
                    kernels::linear_rows::<V, W>(acc, wg, n, job.rows, job.xs);
                }
                c0 = c1;
            }
        }
        // Checked jobs: int64 accumulation, then narrowing with an overflow check.
        for job in self.jobs.iter_mut().filter(|j| j.wide) {
            wide_bias(self.acc_w, self.bias, n);
            self.xs_w.clear();
            if let Some(xs) = job.xs {
                self.xs_w.extend(xs.iter().map(|v| v.wide()));
            }
            let xs_w = job.xs.map(|_| self.xs_w.as_slice());
            kernels::linear_rows::<V::Wide, W>(&mut self.acc_w[..n], w, n, job.rows, xs_w);
            narrow_into(self.node, job.g, &mut self.acc_w[..n], job.acc)?;
        }
        Ok(())
    }
}

/// A linear node over the steps `js` of a chunk.
#[allow(clippy::too_many_arguments)]
pub(crate) fn run_linear<V: EngineValue>(
    cx: &ChunkCtx<'_, V>,
    ni: usize,
    op: &LinearOp<V>,
    ins: &[Buf<V>],
    outs: &mut [Buf<V>],
    js: std::ops::Range<usize>,
    sc: &mut Scratch<V>,
    so: &mut SampleOut<'_>,
) -> Result<()> {
    let node = &cx.net.nodes[ni];
    let in_slot = node.inputs[0];
    let in_kind = cx.plan.slot_kind[in_slot];
    let binary = cx.net.slot_binary[in_slot];
    let Scratch {
        rows,
        xs,
        xs_w,
        acc_w,
        ..
    } = sc;
    let mut jobs: Vec<LinJob<'_, V>> = Vec::with_capacity(js.len());
    let start = js.start;
    for (k, ((outb, rows_j), xs_j)) in outs[js.clone()]
        .iter_mut()
        .zip(rows[js.clone()].iter_mut())
        .zip(xs[js.clone()].iter_mut())
        .enumerate()
    {
        let j = start + k;
        let inb = &ins[cx.bi(in_slot, j)];
        let (act, unit, max_x) = gather_active(inb, in_kind, binary, rows_j, xs_j);
        let li = cx.li(ni, j);
        count_weighted(so, li, node, in_kind, act.len() as u64 * op.n_out as u64);
        let wide = needs_wide::<V>(op.w_abs, max_x, op.bias_abs);
        if !wide {
            fill_bias(&mut outb.d, op.bias.as_deref());
        }
        outb.dirty = true;
        let narrow = unit
            && V::PRECISION == Precision::Int
            && (act.len() as i64) * op.w_max <= i16::MAX as i64;
        jobs.push(LinJob {
            acc: &mut outb.d,
            rows: act,
            xs: if unit { None } else { Some(xs_j.as_slice()) },
            narrow,
            wide,
            g: cx.g0 + j,
        });
    }
    let vis = LinearVisit {
        node,
        jobs: &mut jobs,
        n_out: op.n_out,
        bias: op.bias.as_deref(),
        acc_w: &mut acc_w[..],
        xs_w,
    };
    V::visit_weights(&op.w, vis).map_err(|e| SnnError::Internal(e.to_string()))?
}

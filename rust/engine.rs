//! The simulation of one sample (docs/model-format.md §3-4).
//!
//! Nodes run in topological order, each over a chunk of consecutive steps before the next node
//! (node-major): a node's value at step n depends only on its inputs at step n and its own
//! state, so this gives the same values as a step-by-step loop, while a linear layer can stream
//! every step of the chunk through one group of weight columns at a time (the group stays in
//! cache instead of the whole matrix being re-read at every step). Static values are computed
//! once, at step 0; sparse values carry the list of their nonzero elements; counts are exact.

use crate::error::{Result, SnnError};
use crate::events::Binned;
use crate::graph::OpKind;
use crate::kernels::{self, fill_bias};
use crate::network::{
    ConvOp, FromTensor, Kind, Layout, LinearOp, Network, Node, Op, Plan, PoolOp, ScaleOp,
};
use crate::neurons::{self, NeuronMath};
use crate::numeric::{Mac, Precision, Value, Weight, WeightVisitor};

/// Weight columns processed together across the steps of a chunk.
const COL_GROUP: usize = 128;

// ---------------------------------------------------------------------------------------------
// Inputs and value types

/// Input data of a run: float32 for float networks, int32 for integer networks.
#[derive(Debug, Clone, Copy)]
pub enum Data<'a> {
    F32(&'a [f32]),
    I32(&'a [i32]),
}

impl Data<'_> {
    pub fn len(&self) -> usize {
        match self {
            Data::F32(v) => v.len(),
            Data::I32(v) => v.len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub(crate) fn dtype(&self) -> &'static str {
        match self {
            Data::F32(_) => "float32",
            Data::I32(_) => "int32",
        }
    }
}

/// What the engine needs of a value type beyond [`Value`].
pub trait EngineValue: NeuronMath + FromTensor {
    /// The typed slice of `d`, if its dtype is this type.
    fn data<'a>(d: Data<'a>) -> Option<&'a [Self]>;
    /// Checks a static input element: finite (float) or in [-128, 127] (int).
    fn check_static(v: Self) -> std::result::Result<(), String>;
    /// Checks a per-step input element: finite (float); any int32.
    fn check_frame(v: Self) -> std::result::Result<(), String>;
}

impl EngineValue for f32 {
    fn data<'a>(d: Data<'a>) -> Option<&'a [f32]> {
        match d {
            Data::F32(v) => Some(v),
            _ => None,
        }
    }
    fn check_static(v: f32) -> std::result::Result<(), String> {
        if v.is_finite() {
            Ok(())
        } else {
            Err(format!("{v} is not finite"))
        }
    }
    fn check_frame(v: f32) -> std::result::Result<(), String> {
        Self::check_static(v)
    }
}

impl EngineValue for i32 {
    fn data<'a>(d: Data<'a>) -> Option<&'a [i32]> {
        match d {
            Data::I32(v) => Some(v),
            _ => None,
        }
    }
    fn check_static(v: i32) -> std::result::Result<(), String> {
        if (-128..=127).contains(&v) {
            Ok(())
        } else {
            Err(format!("{v} is outside the int8 range [-128, 127]"))
        }
    }
    fn check_frame(_v: i32) -> std::result::Result<(), String> {
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Per-sample state

/// One value at one step: dense elements, plus the nonzero indices (ascending) for sparse
/// values. `dirty` means `nz` does not describe the nonzeros of `d` (a dense write happened).
#[derive(Debug, Clone, Default)]
pub(crate) struct Buf<V> {
    pub d: Vec<V>,
    pub nz: Vec<u32>,
    pub dirty: bool,
}

impl<V: Value> Buf<V> {
    /// After a dense write: a sparse-kind value collects its nonzero list, any other kind is
    /// marked dirty (to be zeroed before its next sparse write).
    fn finish(&mut self, kind: Kind) {
        if kind == Kind::Sparse {
            kernels::collect_nonzero(&self.d, &mut self.nz);
            self.dirty = false;
        } else {
            self.dirty = true;
        }
    }

    /// Zeroes the value before a sparse write.
    fn clear_sparse(&mut self) {
        if self.dirty {
            self.d.fill(V::ZERO);
        } else {
            for &i in &self.nz {
                if let Some(d) = self.d.get_mut(i as usize) {
                    *d = V::ZERO;
                }
            }
        }
        self.nz.clear();
        self.dirty = false;
    }
}

/// Scratch buffers, sized once per state.
#[derive(Debug, Clone)]
struct Scratch<V: Value> {
    /// Active input indices per step of a chunk (dense inputs).
    rows: Vec<Vec<u32>>,
    /// Active input values per step of a chunk.
    xs: Vec<Vec<V>>,
    xs_w: Vec<V::Wide>,
    /// Wide accumulator; all zeros between uses where noted.
    acc_w: Vec<V::Wide>,
    mark: Vec<bool>,
    touched: Vec<u32>,
}

/// The state of one sample: every value (one buffer per step of a chunk), the membranes, the
/// output spike counts.
#[derive(Debug, Clone)]
pub(crate) struct SampleState<V: Value> {
    /// `[slot][step in chunk]`; static slots use index 0.
    bufs: Vec<Vec<Buf<V>>>,
    /// Membranes of spiking neurons (empty for other nodes; integrate keeps its membrane as its
    /// value, in every step's buffer of its slot).
    mem: Vec<Vec<V>>,
    /// Spikes of the output node per (internal) element, all steps so far.
    out_count: Vec<u64>,
    pub(crate) steps_done: usize,
    sc: Scratch<V>,
}

impl<V: Value> SampleState<V> {
    pub(crate) fn new(net: &Network<V>) -> Self {
        let chunk = net.chunk.max(1);
        let bufs = net
            .slot_len
            .iter()
            .map(|&n| {
                (0..chunk)
                    .map(|_| Buf {
                        d: vec![V::ZERO; n],
                        nz: Vec::new(),
                        dirty: false,
                    })
                    .collect()
            })
            .collect();
        let mem = net
            .nodes
            .iter()
            .map(|n| {
                if n.kind.has_state() {
                    vec![V::ZERO; n.len]
                } else {
                    Vec::new()
                }
            })
            .collect();
        let m = net.max_len;
        SampleState {
            bufs,
            mem,
            out_count: vec![0; net.nodes[net.output].len],
            steps_done: 0,
            sc: Scratch {
                rows: vec![Vec::new(); chunk],
                xs: vec![Vec::new(); chunk],
                xs_w: Vec::with_capacity(m),
                acc_w: vec![V::Wide::default(); m],
                mark: vec![false; m],
                touched: Vec::with_capacity(m),
            },
        }
    }

    /// Back to step 0 (buffers keep their contents: every value is rewritten before it is
    /// read, and sparse writers clear what they wrote last).
    pub(crate) fn reset(&mut self) {
        for m in &mut self.mem {
            m.fill(V::ZERO);
        }
        self.out_count.fill(0);
        self.steps_done = 0;
    }
}

/// Input of one sample.
pub(crate) enum SampleInput<'a, V> {
    /// One sample in torch layout, applied at every step.
    Static(&'a [V]),
    /// `[T][n]` per-step input in torch layout.
    Frames(&'a [V]),
    /// Binned events.
    Events(Binned),
}

/// Where one sample writes its results (slices of the batch arrays, `[L][T]` for counts).
pub(crate) struct SampleOut<'a> {
    pub spikes: &'a mut [u64],
    pub sops: &'a mut [u64],
    pub macs: &'a mut [u64],
    pub aux: &'a mut [u64],
    pub su: &'a mut [u64],
    pub out_sum: &'a mut [f64],
    /// Per recorded node: `[T][n]` (torch order).
    pub rec: Vec<&'a mut [u8]>,
}

/// A node whose spikes are recorded: node index, internal -> torch index map.
pub(crate) struct RecSpec {
    pub node: usize,
    pub map: Vec<u32>,
}

// ---------------------------------------------------------------------------------------------
// Steps

/// One step of one node.
struct StepCtx<'a, V: Value> {
    net: &'a Network<V>,
    plan: &'a Plan,
    /// Global step (since the start of the sample / stream).
    g: usize,
}

/// A chunk of steps.
struct ChunkCtx<'a, V: Value> {
    net: &'a Network<V>,
    plan: &'a Plan,
    /// Global step of the chunk's first step.
    g0: usize,
    /// Step index (within this call) of the chunk's first step.
    t0: usize,
    /// Steps of this call (the T of the count arrays).
    tn: usize,
    /// Steps in this chunk.
    nj: usize,
}

impl<V: Value> ChunkCtx<'_, V> {
    /// Buffer index of `slot` at step `j` of the chunk.
    fn bi(&self, slot: usize, j: usize) -> usize {
        if self.plan.slot_kind[slot] == Kind::Static {
            0
        } else {
            j
        }
    }
    fn step(&self, j: usize) -> StepCtx<'_, V> {
        StepCtx {
            net: self.net,
            plan: self.plan,
            g: self.g0 + j,
        }
    }
    /// Index into the `[L][T]` count arrays.
    fn li(&self, ni: usize, j: usize) -> usize {
        ni * self.tn + self.t0 + j
    }
}

fn overflow<V>(node: &Node<V>, step: usize, msg: impl Into<String>) -> SnnError {
    SnnError::Overflow {
        node: node.name.clone(),
        op: node.kind.as_str().to_string(),
        step,
        sample: String::new(),
        msg: msg.into(),
    }
}

/// The active input elements of a weighted node: their indices, their values (in `xs`,
/// unless all are 1), whether all are 1, and max |x|. Spike inputs (0/1 by construction) are
/// used in place, without a scan.
fn gather_active<'a, V: Value>(
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
fn needs_wide<V: Value>(w_abs: i64, max_x: i64, bias_abs: i64) -> bool {
    if V::PRECISION == Precision::Float32 {
        return false;
    }
    let bound = (w_abs as i128) * (max_x as i128) + bias_abs as i128;
    bound > i32::MAX as i128
}

/// Finishes a wide (checked) accumulation: narrows `acc_w[..n]` into `out`.
fn narrow_into<V: Value>(node: &Node<V>, g: usize, acc_w: &[V::Wide], out: &mut [V]) -> Result<()> {
    for (k, (o, &w)) in out.iter_mut().zip(acc_w).enumerate() {
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

fn wide_bias<V: Value>(acc_w: &mut [V::Wide], bias: Option<&[V]>, n: usize) {
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

/// One step of a linear node, ready to be accumulated.
struct LinJob<'a, V: Value> {
    acc: &'a mut [V],
    rows: &'a [u32],
    xs: Option<&'a [V]>,
    /// Unit inputs few enough for 16-bit partial sums.
    narrow: bool,
    /// The int32 bound does not hold: accumulate in the wide type and check.
    wide: bool,
    g: usize,
}

struct LinearVisit<'a, 'b, V: Value> {
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
                    if job.narrow && V::scatter_unit_narrow(acc, wg, n, job.rows) {
                        continue;
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
            narrow_into(self.node, job.g, &self.acc_w[..n], job.acc)?;
        }
        Ok(())
    }
}

/// A linear node over the steps `js` of a chunk.
#[allow(clippy::too_many_arguments)]
fn run_linear<V: EngineValue>(
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
        match in_kind {
            Kind::Sparse => so.sops[li] += act.len() as u64 * op.n_out as u64,
            _ => so.macs[li] += node.fanout_total,
        }
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

struct ConvVisit<'a, V: Value> {
    fast: bool,
    acc: &'a mut [V],
    acc_w: &'a mut [V::Wide],
    g: &'a kernels::Geom,
    items: &'a [u32],
    xs: Option<&'a [V]>,
    xs_w: Option<&'a [V::Wide]>,
}

impl<V: Value> WeightVisitor<V> for ConvVisit<'_, V> {
    type Out = ();
    fn visit<W: Weight>(self, w: &[W])
    where
        V: Mac<W>,
        V::Wide: Mac<W>,
    {
        if self.fast {
            kernels::conv_scatter::<V, W>(self.acc, w, self.g, self.items, self.xs);
        } else {
            kernels::conv_scatter::<V::Wide, W>(self.acc_w, w, self.g, self.items, self.xs_w);
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn run_conv<V: EngineValue>(
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
    let binary = cx.net.slot_binary[node.inputs[0]];
    let Scratch {
        rows,
        xs,
        xs_w,
        acc_w,
        ..
    } = sc;
    let (rows_s, xs_s) = match (rows.first_mut(), xs.first_mut()) {
        (Some(r), Some(x)) => (r, x),
        _ => return Err(SnnError::Internal("scratch".into())),
    };
    let (rows, unit, max_x) = gather_active(inb, in_kind, binary, rows_s, xs_s);
    match in_kind {
        Kind::Sparse => {
            let c = op.g.c;
            let s: u64 = rows.iter().map(|&i| op.fanout[i as usize / c] as u64).sum();
            so.sops[li] += s * op.g.co as u64;
        }
        _ => so.macs[li] += node.fanout_total,
    }
    let n = node.len;
    outb.dirty = true;
    let wide = needs_wide::<V>(op.w_abs, max_x, op.bias_abs);
    if wide {
        xs_w.clear();
        xs_w.extend(xs_s.iter().map(|v| v.wide()));
        wide_bias(acc_w, op.bias.as_deref(), n);
    } else {
        fill_bias(&mut outb.d, op.bias.as_deref());
    }
    let vis = ConvVisit {
        fast: !wide,
        acc: &mut outb.d,
        acc_w: &mut acc_w[..n],
        g: &op.g,
        items: rows,
        xs: if unit { None } else { Some(xs_s.as_slice()) },
        xs_w: if unit { None } else { Some(xs_w.as_slice()) },
    };
    V::visit_weights(&op.w, vis).map_err(|e| SnnError::Internal(e.to_string()))?;
    if wide {
        narrow_into(node, cx.g, &acc_w[..n], &mut outb.d)?;
    }
    Ok(())
}

fn pool_value<V: Value>(op: &PoolOp, w: V::Wide) -> Option<V> {
    if op.avg {
        V::avg_elem(w, (op.g.kh * op.g.kw) as u32, op.m, op.f)
    } else {
        V::narrow(w)
    }
}

#[allow(clippy::too_many_arguments)]
fn run_pool<V: EngineValue>(
    cx: &StepCtx<'_, V>,
    node: &Node<V>,
    op: &PoolOp,
    inb: &Buf<V>,
    in_kind: Kind,
    outb: &mut Buf<V>,
    sc: &mut Scratch<V>,
    so: &mut SampleOut<'_>,
    li: usize,
) -> Result<()> {
    let n = node.len;
    if in_kind == Kind::Sparse {
        let c = op.g.c;
        so.aux[li] += inb
            .nz
            .iter()
            .map(|&i| op.fanout[i as usize / c] as u64)
            .sum::<u64>();
        outb.clear_sparse();
        sc.touched.clear();
        kernels::pool_scatter_sums::<V>(
            &inb.d,
            &inb.nz,
            &op.g,
            &mut sc.acc_w,
            &mut sc.mark,
            &mut sc.touched,
        );
        sc.touched.sort_unstable();
        let mut bad = None;
        for &o in &sc.touched {
            let o = o as usize;
            let w = sc.acc_w[o];
            sc.acc_w[o] = V::Wide::default();
            sc.mark[o] = false;
            match pool_value::<V>(op, w) {
                Some(v) => {
                    outb.d[o] = v;
                    if v.is_nonzero() {
                        outb.nz.push(o as u32);
                    }
                }
                None => {
                    bad.get_or_insert((o, w));
                }
            }
        }
        if let Some((o, w)) = bad {
            return Err(overflow(
                node,
                cx.g,
                format!("output element {o}: window sum {w:?} gives a value outside int32"),
            ));
        }
    } else {
        so.aux[li] += node.fanout_total;
        kernels::pool_dense_sums::<V>(&inb.d, &op.g, &mut sc.acc_w[..n]);
        for (k, (o, w)) in outb.d.iter_mut().zip(sc.acc_w[..n].iter_mut()).enumerate() {
            *o = pool_value::<V>(op, *w).ok_or_else(|| {
                overflow(
                    node,
                    cx.g,
                    format!("output element {k}: window sum {w:?} gives a value outside int32"),
                )
            })?;
            *w = V::Wide::default();
        }
        outb.finish(cx.plan.slot_kind[node.slot]);
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn run_add<'b, V: EngineValue>(
    cx: &StepCtx<'_, V>,
    node: &Node<V>,
    maps: &[Option<Vec<u32>>],
    ins: impl Iterator<Item = &'b Buf<V>>,
    outb: &mut Buf<V>,
    sc: &mut Scratch<V>,
    so: &mut SampleOut<'_>,
    li: usize,
) -> Result<()> {
    let n = node.len;
    let acc = &mut sc.acc_w[..n];
    acc.fill(V::Wide::default());
    for (k, (&slot, inb)) in node.inputs.iter().zip(ins).enumerate() {
        let kind = cx.plan.slot_kind[slot];
        let map = maps.get(k).and_then(|m| m.as_deref());
        match kind {
            Kind::Sparse => {
                so.aux[li] += inb.nz.len() as u64;
                for &i in &inb.nz {
                    let o = map.map_or(i as usize, |m| m[i as usize] as usize);
                    acc[o] = V::wide_add(acc[o], inb.d[i as usize].wide());
                }
            }
            Kind::Dense | Kind::Static => {
                if kind == Kind::Dense || cx.g == 0 {
                    so.aux[li] += n as u64;
                }
                match map {
                    None => {
                        for (a, &v) in acc.iter_mut().zip(&inb.d) {
                            *a = V::wide_add(*a, v.wide());
                        }
                    }
                    Some(m) => {
                        for (i, &v) in inb.d.iter().enumerate() {
                            let o = m[i] as usize;
                            acc[o] = V::wide_add(acc[o], v.wide());
                        }
                    }
                }
            }
        }
    }
    narrow_into(node, cx.g, acc, &mut outb.d)?;
    acc.fill(V::Wide::default());
    outb.finish(cx.plan.slot_kind[node.slot]);
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn run_scale<V: EngineValue>(
    cx: &StepCtx<'_, V>,
    node: &Node<V>,
    op: &ScaleOp<V>,
    inb: &Buf<V>,
    in_kind: Kind,
    outb: &mut Buf<V>,
    so: &mut SampleOut<'_>,
    li: usize,
) -> Result<()> {
    let out_kind = cx.plan.slot_kind[node.slot];
    let p = op.period;
    let err = |k: usize| {
        overflow(
            node,
            cx.g,
            format!("output element {k} does not fit in int32"),
        )
    };
    if out_kind == Kind::Sparse {
        so.aux[li] += inb.nz.len() as u64;
        outb.clear_sparse();
        for &i in &inb.nz {
            let i = i as usize;
            let c = i % p;
            let v = V::scale_elem(inb.d[i], op.mul[c], op.shift[c], op.f).ok_or_else(|| err(i))?;
            outb.d[i] = v;
            if v.is_nonzero() {
                outb.nz.push(i as u32);
            }
        }
    } else {
        so.aux[li] += match in_kind {
            Kind::Sparse => inb.nz.len() as u64,
            _ => node.len as u64,
        };
        outb.dirty = true;
        let mut bad = false;
        for (oc, ic) in outb.d.chunks_exact_mut(p).zip(inb.d.chunks_exact(p)) {
            for (((o, &x), &m), &s) in oc.iter_mut().zip(ic).zip(&op.mul).zip(&op.shift) {
                match V::scale_elem(x, m, s, op.f) {
                    Some(v) => *o = v,
                    None => bad = true,
                }
            }
        }
        if bad {
            let k = (0..node.len)
                .find(|&i| V::scale_elem(inb.d[i], op.mul[i % p], op.shift[i % p], op.f).is_none())
                .unwrap_or(0);
            return Err(err(k));
        }
    }
    Ok(())
}

/// Runs node `ni` over the steps of a chunk.
#[allow(clippy::too_many_arguments)]
fn run_node<V: EngineValue>(
    cx: &ChunkCtx<'_, V>,
    ni: usize,
    st: &mut SampleState<V>,
    so: &mut SampleOut<'_>,
    rec: &[RecSpec],
    rec_slots: &mut [&mut [u8]],
    is_output: bool,
) -> Result<()> {
    let node = &cx.net.nodes[ni];
    if matches!(node.op, Op::Flatten) {
        return Ok(());
    }
    let js = if cx.plan.slot_kind[node.slot] == Kind::Static {
        if cx.g0 > 0 {
            return Ok(());
        }
        0..1
    } else {
        0..cx.nj
    };
    let SampleState {
        bufs,
        mem,
        out_count,
        sc,
        ..
    } = st;
    let mut outs = std::mem::take(&mut bufs[node.slot]);
    let in_slot = node.inputs[0];
    let in_kind = cx.plan.slot_kind[in_slot];
    let res = (|| -> Result<()> {
        if let Op::Linear(op) = &node.op {
            return run_linear(cx, ni, op, &bufs[in_slot], &mut outs, js, sc, so);
        }
        for j in js {
            let sx = cx.step(j);
            let li = cx.li(ni, j);
            let inb = &bufs[in_slot][cx.bi(in_slot, j)];
            let outb = &mut outs[j];
            match &node.op {
                Op::Linear(_) | Op::Flatten => {}
                Op::Conv(op) => run_conv(&sx, node, op, inb, in_kind, outb, sc, so, li)?,
                Op::Pool(op) => run_pool(&sx, node, op, inb, in_kind, outb, sc, so, li)?,
                Op::Add(op) => {
                    let ins = node.inputs.iter().map(|&s| &bufs[s][cx.bi(s, j)]);
                    run_add(&sx, node, &op.maps, ins, outb, sc, so, li)?
                }
                Op::Scale(op) => run_scale(&sx, node, op, inb, in_kind, outb, so, li)?,
                Op::Neuron(op) => {
                    so.su[li] += node.len as u64;
                    let m = &mut mem[ni];
                    let ok = if node.kind == OpKind::Integrate {
                        let ok = neurons::step(&op.params, op.period, m, &inb.d, &mut []);
                        outb.d.copy_from_slice(m);
                        outb.dirty = true;
                        ok
                    } else {
                        let ok = neurons::step(&op.params, op.period, m, &inb.d, &mut outb.d);
                        kernels::collect_nonzero(&outb.d, &mut outb.nz);
                        outb.dirty = false;
                        so.spikes[li] += outb.nz.len() as u64;
                        let t = cx.t0 + j;
                        for (r, slot) in rec.iter().zip(rec_slots.iter_mut()) {
                            if r.node == ni {
                                let n = node.len;
                                if let Some(frame) = slot.get_mut(t * n..(t + 1) * n) {
                                    for &k in &outb.nz {
                                        frame[r.map[k as usize] as usize] = 1;
                                    }
                                }
                            }
                        }
                        if is_output {
                            for &k in &outb.nz {
                                out_count[k as usize] += 1;
                            }
                        }
                        ok
                    };
                    if !ok {
                        return Err(overflow(
                            node,
                            sx.g,
                            "a membrane value left the int32 range",
                        ));
                    }
                }
            }
        }
        Ok(())
    })();
    bufs[node.slot] = outs;
    res
}

/// Loads the input of global step `g` (step `t` of this call) into buffer `j` of slot 0.
fn load_input<V: EngineValue>(
    net: &Network<V>,
    st: &mut SampleState<V>,
    input: &SampleInput<'_, V>,
    g: usize,
    t: usize,
    j: usize,
    in_map: &[u32],
) -> Result<()> {
    let n = net.input_len;
    match input {
        SampleInput::Static(x) => {
            if g == 0 {
                let buf = &mut st.bufs[0][0];
                for (d, &m) in buf.d.iter_mut().zip(in_map) {
                    *d = x[m as usize];
                }
                buf.dirty = true;
            }
        }
        SampleInput::Frames(f) => {
            let buf = &mut st.bufs[0][j];
            let frame = f
                .get(t * n..(t + 1) * n)
                .ok_or_else(|| SnnError::Internal("frame out of range".into()))?;
            for (d, &m) in buf.d.iter_mut().zip(in_map) {
                *d = frame[m as usize];
            }
            kernels::collect_nonzero(&buf.d, &mut buf.nz);
            buf.dirty = false;
        }
        SampleInput::Events(b) => {
            let buf = &mut st.bufs[0][j];
            buf.clear_sparse();
            for &i in b.step(t) {
                let i = i as usize;
                let d = &mut buf.d[i];
                if !d.is_nonzero() {
                    buf.nz.push(i as u32);
                }
                *d = V::narrow(V::wide_add(d.wide(), V::ONE.wide())).ok_or_else(|| {
                    SnnError::events(None, format!("event count overflow at input element {i}"))
                })?;
            }
            buf.nz.sort_unstable();
        }
    }
    Ok(())
}

/// Runs `tn` steps of one sample from its current state.
#[allow(clippy::too_many_arguments)]
pub(crate) fn run_steps<V: EngineValue>(
    net: &Network<V>,
    plan: &Plan,
    st: &mut SampleState<V>,
    input: &SampleInput<'_, V>,
    tn: usize,
    so: &mut SampleOut<'_>,
    rec: &[RecSpec],
    in_map: &[u32],
) -> Result<()> {
    let chunk = net.chunk.max(1);
    let mut rec_slots: Vec<&mut [u8]> = std::mem::take(&mut so.rec);
    let res = (|| {
        let mut t0 = 0;
        while t0 < tn {
            let nj = chunk.min(tn - t0);
            let g0 = st.steps_done;
            for j in 0..nj {
                load_input(net, st, input, g0 + j, t0 + j, j, in_map)?;
            }
            let cx = ChunkCtx {
                net,
                plan,
                g0,
                t0,
                tn,
                nj,
            };
            for ni in 0..net.nodes.len() {
                run_node(&cx, ni, st, so, rec, &mut rec_slots, ni == net.output)?;
            }
            st.steps_done += nj;
            t0 += nj;
        }
        Ok(())
    })();
    so.rec = rec_slots;
    res
}

/// Writes the output sums (torch order) of the state: spike counts, or the membrane.
pub(crate) fn output_sums<V: Value>(net: &Network<V>, st: &SampleState<V>, out: &mut [f64]) {
    let node = &net.nodes[net.output];
    let layout: &Layout = &node.layout;
    if node.kind == OpKind::Integrate {
        for (k, v) in st.mem[net.output].iter().enumerate() {
            out[layout.torch_index(k)] = v.to_f64();
        }
    } else {
        for (k, &c) in st.out_count.iter().enumerate() {
            out[layout.torch_index(k)] = c as f64;
        }
    }
}

#[cfg(test)]
#[path = "engine_tests.rs"]
mod tests;

//! Loaded models and runs: the [`Model`] (a network file compiled for the engine), batches of
//! samples in parallel with rayon, the [`StreamState`] (one sample's state kept between
//! calls), and the result arrays.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};

use rayon::prelude::*;

use crate::engine::{
    output_sums, run_steps, Data, EngineValue, RecSpec, SampleInput, SampleOut, SampleState,
};
use crate::error::{Result, SnnError};
use crate::events::{self, Binning, EventBatch, Events};
use crate::graph::{fmt_shape, InputKind};
use crate::model_file::{self, ModelFile};
use crate::network::{self, Network};
use crate::numeric::{Precision, Value};

/// Exact operation counts, each `[B][L][T]` (row-major).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    pub spikes: Vec<u64>,
    pub sops: Vec<u64>,
    pub macs: Vec<u64>,
    pub aux_ops: Vec<u64>,
    pub state_updates: Vec<u64>,
}

/// Spikes of one recorded node: `data` is `[B][T][*shape]` in torch layout, 0/1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recording {
    pub name: String,
    pub shape: Vec<usize>,
    pub data: Vec<u8>,
}

/// Result of a run (docs/model-format.md §4-5).
#[derive(Debug, Clone, PartialEq)]
pub struct RunResult {
    pub batch: usize,
    pub steps: usize,
    pub n_nodes: usize,
    pub n_out: usize,
    /// `[B][n_out]`: spike count / steps (neuron output) or `V / steps` (integrate).
    pub output: Vec<f64>,
    /// `[B][n_out]`: spike count over the steps, or the membrane `V` (integrate).
    pub output_sum: Vec<f64>,
    /// `[B]`: argmax of `output`, first index on ties.
    pub prediction: Vec<i64>,
    pub counts: Counts,
    pub record: Vec<Recording>,
}

/// Static description of a loaded model.
#[derive(Debug, Clone)]
pub struct ModelInfo {
    pub precision: Precision,
    pub input_shape: Vec<usize>,
    pub input_kind: InputKind,
    pub input_scale: Option<f64>,
    pub node_names: Vec<String>,
    pub node_ops: Vec<String>,
    pub node_shapes: Vec<Vec<usize>>,
    pub output: String,
    pub dense_macs: Vec<u64>,
}

// ---------------------------------------------------------------------------------------------
// Batches

fn pool_for(threads: usize) -> Result<Arc<rayon::ThreadPool>> {
    static POOLS: OnceLock<Mutex<HashMap<usize, Arc<rayon::ThreadPool>>>> = OnceLock::new();
    let m = POOLS.get_or_init(|| Mutex::new(HashMap::new()));
    let mut g = m
        .lock()
        .map_err(|_| SnnError::Internal("thread pool cache poisoned".into()))?;
    if let Some(p) = g.get(&threads) {
        return Ok(p.clone());
    }
    let p = Arc::new(
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .map_err(|e| {
                SnnError::arg("threads", format!("cannot start {threads} threads: {e}"))
            })?,
    );
    g.insert(threads, p.clone());
    Ok(p)
}

fn record_specs<V>(net: &Network<V>, record: &[String]) -> Result<Vec<RecSpec>> {
    let mut out = Vec::with_capacity(record.len());
    let mut seen = std::collections::HashSet::new();
    for name in record {
        let ni = net
            .node_index(name)
            .ok_or_else(|| SnnError::arg("record", format!("unknown node '{name}'")))?;
        let node = &net.nodes[ni];
        if !node.kind.is_spiking() {
            return Err(SnnError::arg(
                "record",
                format!(
                    "node '{name}' is a {} node; only spiking neurons (dsr_if, dsr_lif, dspike_lif) can be recorded",
                    node.kind.as_str()
                ),
            ));
        }
        if seen.insert(ni) {
            out.push(RecSpec {
                node: ni,
                map: node.layout.torch_map(node.len),
            });
        }
    }
    Ok(out)
}

/// Input -> internal map: `map[k]` = torch index of internal input element k.
fn input_map<V>(net: &Network<V>) -> Vec<u32> {
    net.input_layout.torch_map(net.input_len)
}

fn finish_outputs(res: &mut RunResult, steps_total: &[usize]) {
    let n = res.n_out;
    if n == 0 {
        return;
    }
    for (b, ((out, sums), pred)) in res
        .output
        .chunks_mut(n)
        .zip(res.output_sum.chunks(n))
        .zip(res.prediction.iter_mut())
        .enumerate()
    {
        let s = steps_total.get(b).copied().unwrap_or(1).max(1) as f64;
        // argmax, the first index on ties
        let mut best = (0usize, f64::NEG_INFINITY);
        for (k, (o, &sum)) in out.iter_mut().zip(sums).enumerate() {
            *o = sum / s;
            if k == 0 || *o > best.1 {
                best = (k, *o);
            }
        }
        *pred = best.0 as i64;
    }
}

fn new_result<V>(
    net: &Network<V>,
    batch: usize,
    steps: usize,
    rec: &[RecSpec],
) -> Result<RunResult> {
    let l = net.nodes.len();
    let n_out = net.nodes[net.output].len;
    let per = l
        .checked_mul(steps)
        .and_then(|v| v.checked_mul(batch))
        .filter(|&v| v <= 1 << 32)
        .ok_or_else(|| SnnError::arg("steps", "batch x nodes x steps is too large"))?;
    let mut record = Vec::with_capacity(rec.len());
    for r in rec {
        let node = &net.nodes[r.node];
        let size = node
            .len
            .checked_mul(steps)
            .and_then(|v| v.checked_mul(batch))
            .filter(|&v| v <= 1 << 34)
            .ok_or_else(|| SnnError::arg("record", "the recording would be too large"))?;
        record.push(Recording {
            name: node.name.clone(),
            shape: node.shape.clone(),
            data: vec![0u8; size],
        });
    }
    Ok(RunResult {
        batch,
        steps,
        n_nodes: l,
        n_out,
        output: vec![0.0; batch * n_out],
        output_sum: vec![0.0; batch * n_out],
        prediction: vec![0; batch],
        counts: Counts {
            spikes: vec![0; per],
            sops: vec![0; per],
            macs: vec![0; per],
            aux_ops: vec![0; per],
            state_updates: vec![0; per],
        },
        record,
    })
}

/// Splits the batch arrays of `res` into per-sample output slices.
fn split_outputs<'a>(res: &'a mut RunResult, steps: usize) -> Result<Vec<SampleOut<'a>>> {
    let b = res.batch;
    let lt = res.n_nodes * steps;
    let n_out = res.n_out;
    let mut rec_iters: Vec<_> = res
        .record
        .iter_mut()
        .map(|r| {
            let per = r.data.len() / b.max(1);
            r.data.chunks_mut(per.max(1))
        })
        .collect();
    let c = &mut res.counts;
    let mut outs = Vec::with_capacity(b);
    let mut it = c
        .spikes
        .chunks_mut(lt.max(1))
        .zip(c.sops.chunks_mut(lt.max(1)))
        .zip(c.macs.chunks_mut(lt.max(1)))
        .zip(c.aux_ops.chunks_mut(lt.max(1)))
        .zip(c.state_updates.chunks_mut(lt.max(1)))
        .zip(res.output_sum.chunks_mut(n_out.max(1)));
    for _ in 0..b {
        let (((((spikes, sops), macs), aux), su), out_sum) = it
            .next()
            .ok_or_else(|| SnnError::Internal("result arrays too short".into()))?;
        let mut rec = Vec::with_capacity(rec_iters.len());
        for r in rec_iters.iter_mut() {
            rec.push(
                r.next()
                    .ok_or_else(|| SnnError::Internal("record arrays too short".into()))?,
            );
        }
        outs.push(SampleOut {
            spikes,
            sops,
            macs,
            aux,
            su,
            out_sum,
            rec,
        });
    }
    Ok(outs)
}

/// How the samples of a batch get their input.
enum BatchInput<'a, V> {
    Static(&'a [V]),
    Frames(&'a [V]),
    Events(EventBatch<'a>, Binning),
}

fn run_batch<V: EngineValue>(
    eng: &Engine<V>,
    dynamic: bool,
    input: BatchInput<'_, V>,
    batch: usize,
    steps: usize,
    record: &[String],
    threads: Option<usize>,
) -> Result<RunResult> {
    if steps == 0 {
        return Err(SnnError::arg("steps", "must be >= 1"));
    }
    if threads == Some(0) {
        return Err(SnnError::arg(
            "threads",
            "must be >= 1 (or None for all cores)",
        ));
    }
    let net = &eng.net;
    let plan = if dynamic {
        &net.plan_dynamic
    } else {
        &net.plan_static
    };
    let rec = record_specs(net, record)?;
    let in_map = &eng.in_map;
    let mut res = new_result(net, batch, steps, &rec)?;
    let n_in = net.input_len;
    let shape3 = if net.input_shape.len() == 3 {
        Some([net.input_shape[0], net.input_shape[1], net.input_shape[2]])
    } else {
        None
    };
    {
        let outs = split_outputs(&mut res, steps)?;
        let one = |st: &mut SampleState<V>, b: usize, mut so: SampleOut<'_>| -> Result<()> {
            st.reset();
            let si = match &input {
                BatchInput::Static(x) => SampleInput::Static(&x[b * n_in..(b + 1) * n_in]),
                BatchInput::Frames(f) => {
                    SampleInput::Frames(&f[b * steps * n_in..(b + 1) * steps * n_in])
                }
                BatchInput::Events(ev, binning) => {
                    let shape = shape3
                        .ok_or_else(|| SnnError::arg("x", "events need a [C, H, W] input shape"))?;
                    SampleInput::Events(events::bin_sample(&ev.sample(b), shape, steps, *binning)?)
                }
            };
            run_steps(net, plan, st, &si, steps, &mut so, &rec, in_map)?;
            output_sums(net, st, so.out_sum);
            Ok(())
        };
        let results: Vec<Result<()>> = if threads == Some(1) || batch <= 1 {
            let mut st = eng.take();
            outs.into_iter()
                .enumerate()
                .map(|(b, so)| st.run(|s| one(s, b, so)).map_err(|e| e.in_sample(b)))
                .collect()
        } else {
            let work = || {
                outs.into_par_iter()
                    .enumerate()
                    .map_init(
                        || eng.take(),
                        |st, (b, so)| st.run(|s| one(s, b, so)).map_err(|e| e.in_sample(b)),
                    )
                    .collect::<Vec<_>>()
            };
            match threads {
                Some(t) => pool_for(t)?.install(work),
                None => work(),
            }
        };
        for r in results {
            r?;
        }
    }
    let steps_total = vec![steps; batch];
    finish_outputs(&mut res, &steps_total);
    Ok(res)
}

// ---------------------------------------------------------------------------------------------
// Model

/// A compiled network with its input map and a pool of sample states (reused between runs so
/// that a run allocates only its results).
#[derive(Debug)]
struct Engine<V: Value> {
    net: Network<V>,
    in_map: Vec<u32>,
    pool: Mutex<Vec<SampleState<V>>>,
}

impl<V: Value> Engine<V> {
    fn new(net: Network<V>) -> Self {
        let in_map = input_map(&net);
        Engine {
            net,
            in_map,
            pool: Mutex::new(Vec::new()),
        }
    }

    fn take(&self) -> Pooled<'_, V> {
        let st = self
            .pool
            .lock()
            .ok()
            .and_then(|mut p| p.pop())
            .unwrap_or_else(|| SampleState::new(&self.net));
        Pooled {
            eng: self,
            st: Some(st),
        }
    }
}

/// A state borrowed from an engine's pool; goes back on drop.
struct Pooled<'a, V: Value> {
    eng: &'a Engine<V>,
    st: Option<SampleState<V>>,
}

impl<V: Value> Pooled<'_, V> {
    fn get(&mut self) -> &mut SampleState<V> {
        self.st
            .get_or_insert_with(|| SampleState::new(&self.eng.net))
    }

    /// Runs `f` on the state; a state that saw an error is dropped rather than reused (its
    /// scratch buffers may not be back in their all-zero state).
    fn run<T>(&mut self, f: impl FnOnce(&mut SampleState<V>) -> Result<T>) -> Result<T> {
        let r = f(self.get());
        if r.is_err() {
            self.st = None;
        }
        r
    }
}

impl<V: Value> Drop for Pooled<'_, V> {
    fn drop(&mut self) {
        if let (Some(st), Ok(mut p)) = (self.st.take(), self.eng.pool.lock()) {
            if p.len() < 4 {
                p.push(st);
            }
        }
    }
}

#[derive(Debug)]
enum Compiled {
    F32(Engine<f32>),
    Int(Engine<i32>),
}

#[derive(Debug)]
struct ModelInner {
    info: ModelInfo,
    net: Compiled,
}

/// A network loaded from a snnsim file and compiled for the engine. Cheap to clone (shared).
#[derive(Debug, Clone)]
pub struct Model {
    inner: Arc<ModelInner>,
}

fn check_input<'a, V: EngineValue>(
    data: Data<'a>,
    arg: &str,
    precision: Precision,
    per_sample: usize,
    check: fn(V) -> std::result::Result<(), String>,
) -> Result<&'a [V]> {
    let x = V::data(data).ok_or_else(|| {
        SnnError::arg(
            arg,
            format!(
                "expected {} data for a {} model, got {}",
                if precision == Precision::Int {
                    "int32"
                } else {
                    "float32"
                },
                precision.as_str(),
                data.dtype()
            ),
        )
    })?;
    if per_sample == 0 || x.len() % per_sample != 0 {
        return Err(SnnError::arg(
            arg,
            format!("has {} elements, not a multiple of {per_sample}", x.len()),
        ));
    }
    for (i, &v) in x.iter().enumerate() {
        if let Err(m) = check(v) {
            return Err(SnnError::arg(arg, format!("element {i}: {m}")));
        }
    }
    Ok(x)
}

impl Model {
    /// Loads a network file from disk.
    pub fn load(path: impl AsRef<Path>) -> Result<Model> {
        Self::from_model_file(&model_file::read_path(path.as_ref())?)
    }

    /// Loads a network file from its bytes.
    pub fn from_bytes(data: &[u8]) -> Result<Model> {
        Self::from_model_file(&model_file::read_bytes(data)?)
    }

    /// Compiles an already parsed model file.
    pub fn from_model_file(mf: &ModelFile) -> Result<Model> {
        let g = &mf.graph;
        let (net, dense_macs) = match g.precision {
            Precision::Float32 => {
                let n = network::compile::<f32>(mf)?;
                let dm = n.nodes.iter().map(|x| x.dense_macs).collect();
                (Compiled::F32(Engine::new(n)), dm)
            }
            Precision::Int => {
                let n = network::compile::<i32>(mf)?;
                let dm = n.nodes.iter().map(|x| x.dense_macs).collect();
                (Compiled::Int(Engine::new(n)), dm)
            }
        };
        let info = ModelInfo {
            precision: g.precision,
            input_shape: g.input.shape.clone(),
            input_kind: g.input.kind,
            input_scale: g.input.scale,
            node_names: g.nodes.iter().map(|n| n.name.clone()).collect(),
            node_ops: g.nodes.iter().map(|n| n.op.as_str().to_string()).collect(),
            node_shapes: g.nodes.iter().map(|n| n.shape.clone()).collect(),
            output: g.nodes[g.output].name.clone(),
            dense_macs,
        };
        Ok(Model {
            inner: Arc::new(ModelInner { info, net }),
        })
    }

    /// Sets the node-major chunk length (tests: results must not depend on it).
    #[cfg(test)]
    pub(crate) fn set_chunk(&mut self, chunk: usize) {
        let inner = Arc::get_mut(&mut self.inner).expect("unshared model");
        match &mut inner.net {
            Compiled::F32(e) => {
                e.net.chunk = chunk;
                e.pool.lock().unwrap().clear();
            }
            Compiled::Int(e) => {
                e.net.chunk = chunk;
                e.pool.lock().unwrap().clear();
            }
        }
    }

    pub fn info(&self) -> &ModelInfo {
        &self.inner.info
    }

    /// Dense MACs of the equivalent ANN per node (`[L]`).
    pub fn dense_macs(&self) -> Vec<u64> {
        self.inner.info.dense_macs.clone()
    }

    fn input_len(&self) -> usize {
        self.inner.info.input_shape.iter().product()
    }

    /// Static input `x` = `[B, *input_shape]` (torch layout), applied at each of `steps` steps.
    /// Float models take float32 (finite); int models int32 in [-128, 127].
    pub fn run_static(
        &self,
        x: Data<'_>,
        steps: usize,
        record: &[String],
        threads: Option<usize>,
    ) -> Result<RunResult> {
        let n = self.input_len();
        match &self.inner.net {
            Compiled::F32(e) => {
                let x = check_input::<f32>(x, "x", e.net.precision, n, f32::check_static)?;
                run_batch(
                    e,
                    false,
                    BatchInput::Static(x),
                    x.len() / n,
                    steps,
                    record,
                    threads,
                )
            }
            Compiled::Int(e) => {
                let x = check_input::<i32>(x, "x", e.net.precision, n, i32::check_static)?;
                run_batch(
                    e,
                    false,
                    BatchInput::Static(x),
                    x.len() / n,
                    steps,
                    record,
                    threads,
                )
            }
        }
    }

    /// Per-step input `frames` = `[B, steps, *input_shape]` (torch layout).
    pub fn run_frames(
        &self,
        frames: Data<'_>,
        batch: usize,
        steps: usize,
        record: &[String],
        threads: Option<usize>,
    ) -> Result<RunResult> {
        let n = self.input_len();
        let per = n
            .checked_mul(steps)
            .ok_or_else(|| SnnError::arg("frames", "too large"))?;
        if frames.len() != batch * per {
            return Err(SnnError::arg(
                "frames",
                format!(
                    "has {} elements, expected B*T*{} = {}",
                    frames.len(),
                    n,
                    batch * per
                ),
            ));
        }
        match &self.inner.net {
            Compiled::F32(e) => {
                let f = check_input::<f32>(
                    frames,
                    "frames",
                    e.net.precision,
                    per.max(1),
                    f32::check_frame,
                )?;
                run_batch(
                    e,
                    true,
                    BatchInput::Frames(f),
                    batch,
                    steps,
                    record,
                    threads,
                )
            }
            Compiled::Int(e) => {
                let f = check_input::<i32>(
                    frames,
                    "frames",
                    e.net.precision,
                    per.max(1),
                    i32::check_frame,
                )?;
                run_batch(
                    e,
                    true,
                    BatchInput::Frames(f),
                    batch,
                    steps,
                    record,
                    threads,
                )
            }
        }
    }

    /// Events of a batch binned into `steps` steps.
    pub fn run_events(
        &self,
        ev: &EventBatch<'_>,
        steps: usize,
        binning: Binning,
        record: &[String],
        threads: Option<usize>,
    ) -> Result<RunResult> {
        let batch = ev.validate()?;
        let shape = &self.inner.info.input_shape;
        if shape.len() != 3 || !(1..=2).contains(&shape[0]) {
            return Err(SnnError::arg(
                "x",
                format!(
                    "events need a model input shape [C, H, W] with C in {{1, 2}}, this model's is {}",
                    fmt_shape(shape)
                ),
            ));
        }
        match &self.inner.net {
            Compiled::F32(e) => run_batch(
                e,
                true,
                BatchInput::Events(*ev, binning),
                batch,
                steps,
                record,
                threads,
            ),
            Compiled::Int(e) => run_batch(
                e,
                true,
                BatchInput::Events(*ev, binning),
                batch,
                steps,
                record,
                threads,
            ),
        }
    }

    /// A fresh stream state (batch 1) for this model.
    pub fn new_stream(&self) -> StreamState {
        let st = match &self.inner.net {
            Compiled::F32(e) => StreamInner::F32(SampleState::new(&e.net)),
            Compiled::Int(e) => StreamInner::Int(SampleState::new(&e.net)),
        };
        StreamState {
            model: self.clone(),
            st,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Streaming

#[derive(Debug, Clone)]
enum StreamInner {
    F32(SampleState<f32>),
    Int(SampleState<i32>),
}

/// The state of one sample kept between calls: feeding the frames of a sample in chunks gives
/// exactly the counts, spikes and outputs of feeding them at once.
#[derive(Debug, Clone)]
pub struct StreamState {
    model: Model,
    st: StreamInner,
}

fn feed<V: EngineValue>(
    eng: &Engine<V>,
    st: &mut SampleState<V>,
    input: SampleInput<'_, V>,
    tn: usize,
    record: &[String],
) -> Result<RunResult> {
    let net = &eng.net;
    let rec = record_specs(net, record)?;
    let in_map = &eng.in_map;
    let mut res = new_result(net, 1, tn, &rec)?;
    // Integer runs may stop on an overflow half-way: work on a copy so that the stream keeps
    // its last good state.
    let mut work = if V::PRECISION == Precision::Int {
        Some(st.clone())
    } else {
        None
    };
    {
        let target: &mut SampleState<V> = work.as_mut().unwrap_or(st);
        let mut outs = split_outputs(&mut res, tn)?;
        let so = outs
            .get_mut(0)
            .ok_or_else(|| SnnError::Internal("no sample output".into()))?;
        if tn > 0 {
            run_steps(net, &net.plan_dynamic, target, &input, tn, so, &rec, in_map)?;
        }
        output_sums(net, target, so.out_sum);
    }
    if let Some(w) = work {
        *st = w;
    }
    let total = st.steps_done;
    finish_outputs(&mut res, &[total]);
    Ok(res)
}

impl StreamState {
    /// Steps fed so far.
    pub fn steps_done(&self) -> usize {
        match &self.st {
            StreamInner::F32(s) => s.steps_done,
            StreamInner::Int(s) => s.steps_done,
        }
    }

    /// Feeds `frames` = `[T, *input_shape]` (torch layout). The result's counts and record
    /// cover these T steps; `output`/`output_sum`/`prediction` cover all steps so far.
    pub fn feed_frames(&mut self, frames: Data<'_>, record: &[String]) -> Result<RunResult> {
        let n = self.model.input_len();
        let model = self.model.clone();
        match (&model.inner.net, &mut self.st) {
            (Compiled::F32(e), StreamInner::F32(st)) => {
                let f = check_input::<f32>(frames, "frames", e.net.precision, n, f32::check_frame)?;
                feed(e, st, SampleInput::Frames(f), f.len() / n, record)
            }
            (Compiled::Int(e), StreamInner::Int(st)) => {
                let f = check_input::<i32>(frames, "frames", e.net.precision, n, i32::check_frame)?;
                feed(e, st, SampleInput::Frames(f), f.len() / n, record)
            }
            _ => Err(SnnError::Internal("stream state precision".into())),
        }
    }

    /// Feeds `steps` windows of `dt_us` starting at `origin_us + steps_done*dt_us`; every
    /// event must fall inside them.
    pub fn feed_events(
        &mut self,
        ev: &Events<'_>,
        origin_us: i64,
        dt_us: i64,
        steps: usize,
        record: &[String],
    ) -> Result<RunResult> {
        let shape = self.model.inner.info.input_shape.clone();
        if shape.len() != 3 || !(1..=2).contains(&shape[0]) {
            return Err(SnnError::arg(
                "x",
                format!(
                    "events need a model input shape [C, H, W] with C in {{1, 2}}, this model's is {}",
                    fmt_shape(&shape)
                ),
            ));
        }
        let shape = [shape[0], shape[1], shape[2]];
        let done = self.steps_done();
        let binned = events::bin_windows(ev, shape, origin_us, dt_us, done, steps)?;
        let model = self.model.clone();
        match (&model.inner.net, &mut self.st) {
            (Compiled::F32(e), StreamInner::F32(st)) => {
                feed(e, st, SampleInput::Events(binned), steps, record)
            }
            (Compiled::Int(e), StreamInner::Int(st)) => {
                feed(e, st, SampleInput::Events(binned), steps, record)
            }
            _ => Err(SnnError::Internal("stream state precision".into())),
        }
    }
}

/// Dense frames `[B, steps, C, H, W]` of event counts.
pub fn bin_events(
    ev: &EventBatch<'_>,
    shape: [usize; 3],
    steps: usize,
    binning: Binning,
) -> Result<Vec<i32>> {
    events::bin_events(ev, shape, steps, binning)
}

//! Runs of a batch: samples in parallel with rayon, each on a sample state borrowed from the
//! engine's pool.

use std::sync::{Arc, Mutex};

use rayon::prelude::*;

use super::limits::{self, Need};
use super::network::Network;
use super::result::{finish_outputs, new_result, split_outputs, RunResult};
use super::state::{RecSpec, SampleInput, SampleOut, SampleState};
use super::step::{output_sums, run_steps};
use super::team::{run_with_team, Team};
use super::value::EngineValue;
use crate::error::{Result, SnnError};
use crate::events::{self, Binning, EventBatch};
use crate::numeric::{Precision, Value};

/// Number of thread pools of distinct sizes kept alive between runs; the least recently used
/// one is dropped beyond that (its threads end once the runs using it finish).
pub(crate) const POOLS_KEPT: usize = 4;

/// Thread pools kept for reuse by size, least recently used first.
static POOLS: Mutex<Vec<(usize, Arc<rayon::ThreadPool>)>> = Mutex::new(Vec::new());

/// A pool of `threads` workers (`1..=MAX_THREADS`), reused between runs.
pub(crate) fn pool_for(threads: usize) -> Result<Arc<rayon::ThreadPool>> {
    limits::check_threads(Some(threads))?;
    let mut g = POOLS
        .lock()
        .map_err(|_| SnnError::Internal("thread pool cache poisoned".into()))?;
    if let Some(i) = g.iter().position(|(t, _)| *t == threads) {
        let entry = g.remove(i);
        let p = entry.1.clone();
        g.push(entry);
        return Ok(p);
    }
    let p = Arc::new(
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .map_err(|e| {
                SnnError::arg("threads", format!("cannot start {threads} threads: {e}"))
            })?,
    );
    if g.len() >= POOLS_KEPT {
        g.remove(0);
    }
    g.push((threads, p.clone()));
    Ok(p)
}

/// Sizes of the pools kept, least recently used first (tests).
#[cfg(test)]
pub(crate) fn pool_sizes() -> Vec<usize> {
    POOLS
        .lock()
        .map(|g| g.iter().map(|(t, _)| *t).collect())
        .unwrap_or_default()
}

/// A float32 run whose values overflowed leaves an infinite or NaN membrane (or output):
/// checked on every membrane and the output at the end of the run.
pub(crate) fn check_finite<V: Value>(
    net: &Network<V>,
    st: &SampleState<V>,
    out_sum: &[f64],
) -> Result<()> {
    if V::PRECISION != Precision::Float32 {
        return Ok(());
    }
    let bad = |node: &super::network::Node<V>, what: &str| SnnError::NonFinite {
        node: node.name.clone(),
        op: node.kind.as_str().to_string(),
        sample: String::new(),
        msg: format!(
            "{what} holds an infinite or NaN value after {} step(s); the inputs or weights are \
             too large for float32",
            st.steps_done
        ),
    };
    for (node, m) in net.nodes.iter().zip(&st.mem) {
        if m.iter().any(|v| !v.to_f64().is_finite()) {
            return Err(bad(node, "the membrane"));
        }
    }
    if out_sum.iter().any(|v| !v.is_finite()) {
        return Err(bad(&net.nodes[net.output], "the output"));
    }
    Ok(())
}

pub(crate) fn record_specs<V>(net: &Network<V>, record: &[String]) -> Result<Vec<RecSpec>> {
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
pub(crate) fn input_map<V>(net: &Network<V>) -> Vec<u32> {
    net.input_layout.torch_map(net.input_len)
}

/// How the samples of a batch get their input.
pub(crate) enum BatchInput<'a, V> {
    Static(&'a [V]),
    Frames(&'a [V]),
    Events(EventBatch<'a>, Binning),
}

pub(crate) fn run_batch<V: EngineValue>(
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
    limits::check_threads(threads)?;
    let net = &eng.net;
    let plan = if dynamic {
        &net.plan_dynamic
    } else {
        &net.plan_static
    };
    let rec = record_specs(net, record)?;
    let in_map = &eng.in_map;
    // Everything this run allocates, before it is allocated.
    let workers = limits::workers(batch, threads);
    let mut need = Need::new();
    let rec_nodes: Vec<usize> = rec.iter().map(|r| r.node).collect();
    limits::add_results(&mut need, net, batch, steps, &rec_nodes);
    limits::add_states(&mut need, net, workers);
    if let BatchInput::Events(ev, _) = &input {
        let most = ev.most_per_sample();
        limits::add_binned(&mut need, workers, steps, most);
    }
    need.check("steps", "this run")?;
    let mut res = new_result(net, batch, steps, &rec)?;
    let n_in = net.input_len;
    let shape3 = crate::format::event_sensor(&net.input_shape);
    {
        let outs = split_outputs(&mut res, steps)?;
        let one = |st: &mut SampleState<V>,
                   b: usize,
                   mut so: SampleOut<'_>,
                   team: &Team|
         -> Result<()> {
            st.reset();
            let si = match &input {
                BatchInput::Static(x) => SampleInput::Static(&x[b * n_in..(b + 1) * n_in]),
                BatchInput::Frames(f) => {
                    SampleInput::Frames(&f[b * steps * n_in..(b + 1) * steps * n_in])
                }
                BatchInput::Events(ev, binning) => {
                    let shape = shape3.ok_or_else(|| {
                        SnnError::arg("x", "events need a [C, H, W], [C, L] or [F] input shape")
                    })?;
                    SampleInput::Events(events::bin_sample(&ev.sample(b), shape, steps, *binning)?)
                }
            };
            run_steps(net, plan, st, &si, steps, &mut so, &rec, in_map, team)?;
            output_sums(net, st, so.out_sum);
            check_finite(net, st, so.out_sum)
        };
        let serial = |st: &mut SampleState<V>, b: usize, so: SampleOut<'_>| {
            run_with_team(1, |team| one(st, b, so, team))
        };
        // A batch of one sample on several threads: the sample runs inside a pool with a team
        // of its threads, and its large nodes split each step's work across the team.
        let width = threads
            .unwrap_or_else(rayon::current_num_threads)
            .clamp(1, limits::MAX_THREADS);
        let results: Vec<Result<()>> = if batch == 1 && width > 1 && net.splits_across_threads() {
            pool_for(width)?.install(|| {
                run_with_team(width, |team| {
                    let mut st = eng.take();
                    outs.into_iter()
                        .enumerate()
                        .map(|(b, so)| st.run(|s| one(s, b, so, team)).map_err(|e| e.in_sample(b)))
                        .collect()
                })
            })
        } else if workers == 1 {
            let mut st = eng.take();
            outs.into_iter()
                .enumerate()
                .map(|(b, so)| st.run(|s| serial(s, b, so)).map_err(|e| e.in_sample(b)))
                .collect()
        } else {
            let work = || {
                outs.into_par_iter()
                    .enumerate()
                    .map_init(
                        || eng.take(),
                        |st, (b, so)| st.run(|s| serial(s, b, so)).map_err(|e| e.in_sample(b)),
                    )
                    .collect::<Vec<_>>()
            };
            match threads {
                // a pool larger than the batch would only hold idle threads
                Some(t) => pool_for(t.min(batch))?.install(work),
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
pub(crate) struct Engine<V: Value> {
    pub(crate) net: Network<V>,
    pub(crate) in_map: Vec<u32>,
    pub(crate) pool: Mutex<Vec<SampleState<V>>>,
}

impl<V: Value> Engine<V> {
    pub(crate) fn new(net: Network<V>) -> Self {
        let in_map = input_map(&net);
        Engine {
            net,
            in_map,
            pool: Mutex::new(Vec::new()),
        }
    }

    pub(crate) fn take(&self) -> Pooled<'_, V> {
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
pub(crate) struct Pooled<'a, V: Value> {
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

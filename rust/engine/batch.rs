//! Runs of a batch: samples in parallel with rayon, each on a sample state borrowed from the
//! engine's pool.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use rayon::prelude::*;

use super::network::Network;
use super::result::{finish_outputs, new_result, split_outputs, RunResult};
use super::state::{RecSpec, SampleInput, SampleOut, SampleState};
use super::step::{output_sums, run_steps};
use super::value::EngineValue;
use crate::error::{Result, SnnError};
use crate::events::{self, Binning, EventBatch};
use crate::numeric::Value;

pub(crate) fn pool_for(threads: usize) -> Result<Arc<rayon::ThreadPool>> {
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
        // A batch of one sample on several threads: the sample runs inside a pool and its
        // large nodes split their work across the pool's threads.
        let width = threads.unwrap_or_else(rayon::current_num_threads).max(1);
        let results: Vec<Result<()>> = if batch == 1 && width > 1 {
            pool_for(width)?.install(|| {
                let mut st = eng.take();
                outs.into_iter()
                    .enumerate()
                    .map(|(b, so)| {
                        st.run(|s| {
                            s.par = width;
                            one(s, b, so)
                        })
                        .map_err(|e| e.in_sample(b))
                    })
                    .collect()
            })
        } else if threads == Some(1) || batch <= 1 {
            let mut st = eng.take();
            outs.into_iter()
                .enumerate()
                .map(|(b, so)| {
                    st.run(|s| {
                        s.par = 1;
                        one(s, b, so)
                    })
                    .map_err(|e| e.in_sample(b))
                })
                .collect()
        } else {
            let work = || {
                outs.into_par_iter()
                    .enumerate()
                    .map_init(
                        || eng.take(),
                        |st, (b, so)| {
                            st.run(|s| {
                                s.par = 1;
                                one(s, b, so)
                            })
                            .map_err(|e| e.in_sample(b))
                        },
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

//! A loaded model: a network file compiled for the engine in its precision, and the runs it
//! offers (static input, per-step frames, events, streams).

use std::path::Path;
use std::sync::Arc;

use super::batch::{run_batch, BatchInput, Engine};
use super::compile::compile;
use super::result::RunResult;
use super::state::SampleState;
use super::stream::{StreamInner, StreamState};
use super::value::{Data, EngineValue};
use crate::error::{Result, SnnError};
use crate::events::{Binning, EventBatch};
use crate::format::{self, fmt_shape, InputKind, ModelFile};
use crate::numeric::Precision;

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

#[derive(Debug)]
pub(crate) enum Compiled {
    F32(Engine<f32>),
    Int(Engine<i32>),
}

#[derive(Debug)]
pub(crate) struct ModelInner {
    pub(crate) info: ModelInfo,
    pub(crate) net: Compiled,
}

/// A network loaded from a snnsim file and compiled for the engine. Cheap to clone (shared).
#[derive(Debug, Clone)]
pub struct Model {
    pub(crate) inner: Arc<ModelInner>,
}

pub(crate) fn check_input<'a, V: EngineValue>(
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
        Self::from_model_file(&format::read_path(path.as_ref())?)
    }

    /// Loads a network file from its bytes.
    pub fn from_bytes(data: &[u8]) -> Result<Model> {
        Self::from_model_file(&format::read_bytes(data)?)
    }

    /// Compiles an already parsed model file.
    pub fn from_model_file(mf: &ModelFile) -> Result<Model> {
        let g = &mf.graph;
        let (net, dense_macs) = match g.precision {
            Precision::Float32 => {
                let n = compile::<f32>(mf)?;
                let dm = n.nodes.iter().map(|x| x.dense_macs).collect();
                (Compiled::F32(Engine::new(n)), dm)
            }
            Precision::Int => {
                let n = compile::<i32>(mf)?;
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

    /// Sets the node-major chunk length (tests: results must not depend on it). A graph with
    /// delays keeps its chunk of 1.
    #[cfg(test)]
    pub(crate) fn set_chunk(&mut self, chunk: usize) {
        let inner = Arc::get_mut(&mut self.inner).expect("unshared model");
        match &mut inner.net {
            Compiled::F32(e) if !e.net.delays.is_empty() => {}
            Compiled::Int(e) if !e.net.delays.is_empty() => {}
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

    pub(crate) fn input_len(&self) -> usize {
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
        if format::event_sensor(shape).is_none() {
            return Err(SnnError::arg(
                "x",
                format!(
                    "events need a model input shape [C, H, W] or [C, L] with C in {{1, 2}}, or \
                     [F]; this model's is {}",
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

//! A loaded model: a network file compiled for the engine in its precision, and the runs it
//! offers (static input, per-step frames, events, streams).

use std::path::Path;
use std::sync::Arc;

use super::batch::Engine;
use super::compile::compile;
use super::compiled::{first_invalid, Compiled, RunInput};
use super::result::RunResult;
use super::stream::StreamState;
use super::value::Data;
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
    /// `input.signed`: an int model's static input lies in [-128, 127] (true) or [0, 255].
    pub input_signed: bool,
    pub node_names: Vec<String>,
    pub node_ops: Vec<String>,
    pub node_shapes: Vec<Vec<usize>>,
    pub output: String,
    pub dense_macs: Vec<u64>,
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
        let net = match g.precision {
            Precision::Float32 => Compiled::F32(Engine::new(compile::<f32>(mf)?)),
            Precision::Int => Compiled::Int(Engine::new(compile::<i32>(mf)?)),
        };
        let dense_macs = net.ops().dense_macs();
        let info = ModelInfo {
            precision: g.precision,
            input_shape: g.input.shape.clone(),
            input_kind: g.input.kind,
            input_scale: g.input.scale,
            input_signed: g.input.signed,
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
        inner.net.ops_mut().set_chunk(chunk);
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

    /// The integer range `[lo, hi]` of an int model's static input: [-128, 127], or [0, 255]
    /// when the file's `input.signed` is false.
    pub fn input_range(&self) -> (i32, i32) {
        format::int_range(self.inner.info.input_signed)
    }

    /// Static input `x` = `[B, *input_shape]` (torch layout), applied at each of `steps` steps.
    /// Float models take float32 (finite); int models int32 in [`Model::input_range`].
    pub fn run_static(
        &self,
        x: Data<'_>,
        steps: usize,
        record: &[String],
        threads: Option<usize>,
    ) -> Result<RunResult> {
        if let Data::I32(v) = x {
            self.check_static_range(v)?;
        }
        let input = RunInput::Static(x);
        self.inner.net.ops().run(input, steps, record, threads)
    }

    /// Checks that every element of an int static input lies in the model's input range
    /// (a float model refuses int32 data later, naming the dtype).
    fn check_static_range(&self, x: &[i32]) -> Result<()> {
        if self.inner.info.precision != Precision::Int {
            return Ok(());
        }
        let (lo, hi) = self.input_range();
        match first_invalid(x, |v: i32| (v >= lo) & (v <= hi)) {
            None => Ok(()),
            Some(i) => Err(SnnError::arg(
                "x",
                format!(
                    "element {i}: {} is outside this model's input range [{lo}, {hi}] \
                     ({} 8-bit input, input.signed = {})",
                    x[i],
                    if self.inner.info.input_signed {
                        "signed"
                    } else {
                        "unsigned"
                    },
                    self.inner.info.input_signed
                ),
            )),
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
        let input = RunInput::Frames {
            data: frames,
            batch,
            per,
        };
        self.inner.net.ops().run(input, steps, record, threads)
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
        let input = RunInput::Events {
            ev: *ev,
            binning,
            batch,
        };
        self.inner.net.ops().run(input, steps, record, threads)
    }

    /// A fresh stream state (batch 1) for this model.
    pub fn new_stream(&self) -> StreamState {
        let st = self.inner.net.ops().new_state();
        StreamState {
            model: self.clone(),
            st,
        }
    }
}

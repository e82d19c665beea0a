//! A compiled engine of either precision behind one interface: every operation whose types
//! depend on the value type (`f32` or `i32`) is written once, generically, in the impl of
//! [`EngineOps`] for [`Engine<V>`]; [`Compiled::ops`] is the only match on the precision.

use super::batch::{run_batch, BatchInput, Engine};
use super::result::RunResult;
use super::state::{SampleInput, SampleState};
use super::stream::{check_events_feed, feed, StreamInner};
use super::value::{Data, EngineValue};
use crate::error::{Result, SnnError};
use crate::events::{Binned, Binning, EventBatch};
use crate::numeric::Precision;

/// A network compiled for the engine in its file's precision.
#[derive(Debug)]
pub(crate) enum Compiled {
    F32(Engine<f32>),
    Int(Engine<i32>),
}

impl Compiled {
    /// The engine behind its precision-independent interface.
    pub(crate) fn ops(&self) -> &dyn EngineOps {
        match self {
            Compiled::F32(e) => e,
            Compiled::Int(e) => e,
        }
    }

    /// As [`Compiled::ops`], mutable.
    #[cfg(test)]
    pub(crate) fn ops_mut(&mut self) -> &mut dyn EngineOps {
        match self {
            Compiled::F32(e) => e,
            Compiled::Int(e) => e,
        }
    }
}

/// A batch run's input before it is typed (checked and converted by [`EngineOps::run`]).
#[derive(Clone, Copy)]
pub(crate) enum RunInput<'a> {
    /// `[B, *input_shape]` (torch layout), applied at every step.
    Static(Data<'a>),
    /// `[B, T, *input_shape]` (torch layout) of `batch` samples of `per` values each.
    Frames {
        data: Data<'a>,
        batch: usize,
        per: usize,
    },
    /// Events of `batch` samples, binned.
    Events {
        ev: EventBatch<'a>,
        binning: Binning,
        batch: usize,
    },
}

/// A stream step's input before it is typed (checked and converted by [`EngineOps::feed`]).
pub(crate) enum FeedInput<'a> {
    /// `[T, *input_shape]` (torch layout).
    Frames(Data<'a>),
    /// `steps` windows of binned events.
    Events(Binned, usize),
}

/// The operations of a compiled engine that depend on its value type, as methods of one
/// object-safe trait implemented once for every `Engine<V>`.
///
/// Why a trait object: a closure cannot be generic over the value type, and a visitor trait
/// with a generic method needs a named type per call site; with the operations as methods,
/// each has one generic body and the precision is matched once ([`Compiled::ops`]), at the
/// cost of one virtual call per run.
pub(crate) trait EngineOps {
    /// Dense MACs of the equivalent ANN per node (`[L]`).
    fn dense_macs(&self) -> Vec<u64>;

    /// A batch run of `steps` steps (see [`run_batch`]).
    fn run(
        &self,
        input: RunInput<'_>,
        steps: usize,
        record: &[String],
        threads: Option<usize>,
    ) -> Result<RunResult>;

    /// A fresh stream state (batch 1).
    fn new_state(&self) -> StreamInner;

    /// Checks what feeding `steps` steps of `events` events recording `record` allocates.
    fn check_events_feed(&self, record: &[String], steps: usize, events: usize) -> Result<()>;

    /// One stream step from the state `st` (which must be of this engine's precision).
    fn feed(
        &self,
        st: &mut StreamInner,
        input: FeedInput<'_>,
        record: &[String],
    ) -> Result<RunResult>;

    /// Sets the node-major chunk length (tests: results must not depend on it). A graph with
    /// delays keeps its chunk of 1.
    #[cfg(test)]
    fn set_chunk(&mut self, chunk: usize);
}

/// Elements checked per block of the fast pass of [`check_input`].
const CHECK_BLOCK: usize = 4096;

/// The index of the first element of `x` that `ok` refuses. A branch-free pass per block first
/// (it runs at SIMD width: inputs are large and checks precede every run); only a failing block
/// is searched for the element.
pub(crate) fn first_invalid<T: Copy>(x: &[T], ok: impl Fn(T) -> bool) -> Option<usize> {
    for (b, block) in x.chunks(CHECK_BLOCK).enumerate() {
        if block.iter().fold(true, |all, &v| all & ok(v)) {
            continue;
        }
        if let Some(i) = block.iter().position(|&v| !ok(v)) {
            return Some(b * CHECK_BLOCK + i);
        }
    }
    None
}

/// Checks untyped input data of `arg` as values of type `V` for a model of `precision`:
/// whole samples of `per_sample` values, each value accepted by `ok` (`why` says why one is
/// not), found by [`first_invalid`].
pub(crate) fn check_input<'a, V: EngineValue>(
    data: Data<'a>,
    arg: &str,
    precision: Precision,
    per_sample: usize,
    ok: impl Fn(V) -> bool,
    why: impl Fn(V) -> String,
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
    if let Some(i) = first_invalid(x, &ok) {
        let m = why(x[i]);
        return Err(SnnError::arg(arg, format!("element {i}: {m}")));
    }
    Ok(x)
}

/// The stream state of values of type `V` inside a [`StreamInner`].
pub(crate) trait StreamValue: EngineValue {
    fn wrap(st: SampleState<Self>) -> StreamInner;
    fn state_mut(st: &mut StreamInner) -> Option<&mut SampleState<Self>>;
}

impl StreamValue for f32 {
    fn wrap(st: SampleState<f32>) -> StreamInner {
        StreamInner::F32(st)
    }
    fn state_mut(st: &mut StreamInner) -> Option<&mut SampleState<f32>> {
        match st {
            StreamInner::F32(s) => Some(s),
            StreamInner::Int(_) => None,
        }
    }
}

impl StreamValue for i32 {
    fn wrap(st: SampleState<i32>) -> StreamInner {
        StreamInner::Int(st)
    }
    fn state_mut(st: &mut StreamInner) -> Option<&mut SampleState<i32>> {
        match st {
            StreamInner::Int(s) => Some(s),
            StreamInner::F32(_) => None,
        }
    }
}

impl<V: StreamValue> EngineOps for Engine<V> {
    fn dense_macs(&self) -> Vec<u64> {
        self.net.nodes.iter().map(|x| x.dense_macs).collect()
    }

    fn run(
        &self,
        input: RunInput<'_>,
        steps: usize,
        record: &[String],
        threads: Option<usize>,
    ) -> Result<RunResult> {
        let precision = self.net.precision;
        let (dynamic, input, batch) = match input {
            RunInput::Static(x) => {
                let n = self.net.input_len;
                let x = check_input::<V>(x, "x", precision, n, V::static_ok, V::static_error)?;
                (false, BatchInput::Static(x), x.len() / n)
            }
            RunInput::Frames { data, batch, per } => {
                let f = check_input::<V>(
                    data,
                    "frames",
                    precision,
                    per.max(1),
                    V::frame_ok,
                    V::frame_error,
                )?;
                (true, BatchInput::Frames(f), batch)
            }
            RunInput::Events { ev, binning, batch } => {
                (true, BatchInput::Events(ev, binning), batch)
            }
        };
        run_batch(self, dynamic, input, batch, steps, record, threads)
    }

    fn new_state(&self) -> StreamInner {
        V::wrap(SampleState::new(&self.net))
    }

    fn check_events_feed(&self, record: &[String], steps: usize, events: usize) -> Result<()> {
        check_events_feed(&self.net, record, steps, events)
    }

    fn feed(
        &self,
        st: &mut StreamInner,
        input: FeedInput<'_>,
        record: &[String],
    ) -> Result<RunResult> {
        let st =
            V::state_mut(st).ok_or_else(|| SnnError::Internal("stream state precision".into()))?;
        match input {
            FeedInput::Frames(frames) => {
                let n = self.net.input_len;
                let prec = self.net.precision;
                let f = check_input::<V>(frames, "frames", prec, n, V::frame_ok, V::frame_error)?;
                feed(self, st, SampleInput::Frames(f), f.len() / n, record)
            }
            FeedInput::Events(binned, steps) => {
                feed(self, st, SampleInput::Events(binned), steps, record)
            }
        }
    }

    #[cfg(test)]
    fn set_chunk(&mut self, chunk: usize) {
        if self.net.delays.is_empty() {
            self.net.chunk = chunk;
            self.pool.lock().unwrap().clear();
        }
    }
}

//! Streams: one sample's state kept between calls, fed frames or event windows.

use super::batch::{record_specs, Engine};
use super::model::{check_input, Compiled, Model};
use super::result::{finish_outputs, new_result, split_outputs, RunResult};
use super::state::{SampleInput, SampleState};
use super::step::{output_sums, run_steps};
use super::team::run_with_team;
use super::value::{Data, EngineValue};
use crate::error::{Result, SnnError};
use crate::events::{self, Events};
use crate::format::fmt_shape;
use crate::numeric::Precision;

// ---------------------------------------------------------------------------------------------
// Streaming

#[derive(Debug, Clone)]
pub(crate) enum StreamInner {
    F32(SampleState<f32>),
    Int(SampleState<i32>),
}

/// The state of one sample kept between calls: feeding the frames of a sample in chunks gives
/// exactly the counts, spikes and outputs of feeding them at once.
#[derive(Debug, Clone)]
pub struct StreamState {
    pub(crate) model: Model,
    pub(crate) st: StreamInner,
}

pub(crate) fn feed<V: EngineValue>(
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
            run_with_team(1, |team| {
                run_steps(
                    net,
                    &net.plan_dynamic,
                    target,
                    &input,
                    tn,
                    so,
                    &rec,
                    in_map,
                    team,
                )
            })?;
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

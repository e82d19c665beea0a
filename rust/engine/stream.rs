//! Streams: one sample's state kept between calls, fed frames or event windows.

use super::batch::{check_finite, record_specs, Engine};
use super::compiled::FeedInput;
use super::limits::{self, Need};
use super::model::Model;
use super::network::Network;
use super::result::{finish_outputs, new_result, split_outputs, RunResult};
use super::state::{SampleInput, SampleState};
use super::step::{output_sums, run_steps};
use super::team::run_with_team;
use super::value::{Data, EngineValue};
use crate::error::{Result, SnnError};
use crate::events::{self, Events};
use crate::format::fmt_shape;

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

/// What feeding `tn` steps allocates: the results, a copy of the state, the binned events.
fn check_feed<V>(
    net: &Network<V>,
    arg: &str,
    tn: usize,
    rec: &[usize],
    events: usize,
) -> Result<()> {
    let mut need = Need::new();
    limits::add_results(&mut need, net, 1, tn, rec);
    limits::add_states(&mut need, net, 1);
    if events > 0 {
        limits::add_binned(&mut need, 1, tn, events);
    }
    need.check(arg, &format!("this stream step ({tn} steps)"))
}

/// [`check_feed`] for `events` events over `steps` windows, recording the known nodes of
/// `record` (unknown names are reported by the feed itself).
pub(crate) fn check_events_feed<V>(
    net: &Network<V>,
    record: &[String],
    steps: usize,
    events: usize,
) -> Result<()> {
    let rec: Vec<usize> = record.iter().filter_map(|n| net.node_index(n)).collect();
    check_feed(net, "dt_us", steps, &rec, events)
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
    let rec_nodes: Vec<usize> = rec.iter().map(|r| r.node).collect();
    check_feed(net, "frames", tn, &rec_nodes, 0)?;
    let in_map = &eng.in_map;
    let mut res = new_result(net, 1, tn, &rec)?;
    // A run may stop half-way (integer overflow) or end with non-finite float32 values: work
    // on a copy, so that on any error the stream keeps its last good state.
    let mut work = st.clone();
    {
        let mut outs = split_outputs(&mut res, tn)?;
        let so = outs
            .get_mut(0)
            .ok_or_else(|| SnnError::Internal("no sample output".into()))?;
        if tn > 0 {
            run_with_team(1, |team| {
                run_steps(
                    net,
                    &net.plan_dynamic,
                    &mut work,
                    &input,
                    tn,
                    so,
                    &rec,
                    in_map,
                    team,
                )
            })?;
        }
        output_sums(net, &work, so.out_sum);
        check_finite(net, &work, so.out_sum)?;
    }
    *st = work;
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
        let model = self.model.clone();
        let input = FeedInput::Frames(frames);
        model.inner.net.ops().feed(&mut self.st, input, record)
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
        let model_shape = &self.model.inner.info.input_shape;
        let shape = crate::format::event_sensor(model_shape).ok_or_else(|| {
            SnnError::arg(
                "x",
                format!(
                    "events need a model input shape [C, H, W] or [C, L] with C in {{1, 2}}, or \
                     [F]; this model's is {}",
                    fmt_shape(model_shape)
                ),
            )
        })?;
        let done = self.steps_done();
        let model = self.model.clone();
        let ops = model.inner.net.ops();
        ops.check_events_feed(record, steps, ev.t.len())?;
        let binned = events::bin_windows(ev, shape, origin_us, dt_us, done, steps)?;
        ops.feed(&mut self.st, FeedInput::Events(binned, steps), record)
    }
}

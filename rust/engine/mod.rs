//! The engine: a validated file compiled into a [`network::Network`] ([`compile`], one step
//! per op family), run one sample at a time over chunks of steps ([`step`], one file per op
//! family in [`ops`]) on a per-sample [`state`], batches in parallel ([`batch`]), streams
//! ([`stream`]); [`compiled`] puts the two precisions behind one interface.
//!
//! From `snnsim.run` to a neuron update: `Model::run_static` ([`model`]) -> `EngineOps::run`
//! ([`compiled`]) -> `run_batch` ([`batch`]) -> `run_steps` -> `run_node` ([`step`]) ->
//! `ops::neuron::run_neuron` -> `neurons::step`.

pub(crate) mod batch;
pub(crate) mod compile;
pub(crate) mod compiled;
pub(crate) mod frames;
pub(crate) mod limits;
pub(crate) mod model;
pub(crate) mod network;
pub(crate) mod ops;
pub(crate) mod result;
pub(crate) mod state;
pub(crate) mod step;
pub(crate) mod stream;
pub(crate) mod team;
pub(crate) mod value;

pub use frames::bin_events;
pub use model::{Model, ModelInfo};
pub use result::{Counts, Recording, RunResult};
pub use stream::StreamState;
pub use value::Data;

pub use limits::{memory_limit, parse_bytes, set_memory_limit, MAX_THREADS};

#[cfg(test)]
mod tests;

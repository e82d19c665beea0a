//! snnsim: an event-driven spiking neural network engine.
//!
//! The crate is plain Rust; the Python extension `snnsim._core` (feature `python`) is a thin
//! layer in `bindings`. File format and semantics: `docs/model-format.md`.
//!
//! ```text
//! format (the file: safetensors container, graph JSON, tensor rules)
//!     -> engine::compile (a Network for one precision)
//!     -> engine::model / batch / stream (runs) -> engine::step (one sample, chunks of steps)
//!     -> engine::ops (one file per op family) -> kernels (scatter loops, SIMD choice)
//!                                             -> neurons (the neuron law, also used by training)
//! events (binning of event recordings)   training (the fused DSR forward and backward of the
//!                                                torch layers)
//! ```
//!
//! Numbers are generic over the value type (`f32`, `i32`) and the weight type (`f32`, `i8`,
//! `i16`), see `numeric`.

mod engine;
mod error;
mod events;
mod format;
mod kernels;
mod neurons;
mod numeric;
mod training;

#[cfg(test)]
mod testutil;

#[cfg(feature = "python")]
mod bindings;

pub use engine::{
    bin_events, memory_limit, parse_bytes, set_memory_limit, Counts, Data, Model, ModelInfo,
    Recording, RunResult, StreamState, MAX_THREADS,
};
pub use error::{Result, SnnError};
pub use events::{Binning, EventBatch, Events};
pub use format::{
    read_bytes as read_model_bytes, write_bytes as write_model_bytes, InputKind, ModelFile, Tensor,
    TensorData,
};
pub use numeric::Precision;
pub use training::{
    dsr_rate_backward, simulate_dsr, DsrForward, DsrLaw, DsrOutputs, Pool, RateMask,
};

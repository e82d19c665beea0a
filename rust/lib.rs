//! snnsim: an event-driven spiking neural network engine.
//!
//! The crate is plain Rust; the Python extension `snnsim._core` (feature `python`) is a thin
//! layer in [`bindings`]. File format and semantics: `docs/model-format.md`.
//!
//! ```text
//! model_file (safetensors) -> graph (parse, validate) -> network (compile)
//!     -> model (batches, streams) -> engine (one sample) -> kernels / neurons
//! ```
//!
//! Numbers are generic over the value type (`f32`, `i32`) and the weight type (`f32`, `i8`,
//! `i16`), see [`numeric`].

pub mod buffer;
pub mod engine;
pub mod error;
pub mod events;
pub mod graph;
pub mod kernels;
pub mod model;
pub mod model_file;
pub mod network;
pub mod neurons;
pub mod numeric;
pub mod training;

#[cfg(test)]
mod testutil;

#[cfg(feature = "python")]
mod bindings;

pub use engine::Data;
pub use error::{Result, SnnError};
pub use events::{Binning, EventBatch, Events};
pub use model::{bin_events, Counts, Model, ModelInfo, Recording, RunResult, StreamState};
pub use numeric::Precision;

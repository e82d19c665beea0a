//! The network file (docs/model-format.md §1-2): a safetensors container ([`file`]) whose
//! metadata holds the graph JSON ([`parse`], with attributes and shapes from [`shapes`]) and
//! the training metadata ([`meta`]), and whose tensors belong to the nodes' fields
//! ([`tensors`]). Everything here validates; nothing here runs a network.

mod file;
mod graph;
mod json;
mod meta;
mod parse;
mod shapes;
mod tensors;

pub use file::{read_bytes, write_bytes, ModelFile};
pub use graph::{int_range, InputKind};
pub use tensors::{Tensor, TensorData};

pub(crate) use file::read_path;
pub(crate) use graph::{event_sensor, fmt_shape, Graph, NodeSpec, OpKind, Src, MAX_ELEMS};
pub(crate) use tensors::NodeParams;

#[cfg(test)]
mod tests;

//! The one error type of the engine. Every message names what was wrong: the node and field of
//! a model file, the argument of a call, or the node and step of an integer overflow. Also the
//! fallible allocation ([`zeros`]) that turns an allocator refusal into such an error.

use thiserror::Error;

/// Everything that can go wrong while loading a network or running it.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum SnnError {
    /// The file could not be read from disk.
    #[error("cannot read model file '{path}': {msg}")]
    Io { path: String, msg: String },

    /// The bytes are not a valid safetensors container, or lack the graph metadata.
    #[error("invalid model file: {0}")]
    File(String),

    /// The graph JSON is malformed or inconsistent (not tied to one node).
    #[error("invalid graph: {0}")]
    Graph(String),

    /// A node's attributes or connections are invalid.
    #[error("invalid node '{node}' ({op}): {msg}")]
    Node {
        node: String,
        op: String,
        msg: String,
    },

    /// A tensor a node owns is missing, has the wrong dtype/shape, or holds invalid values.
    #[error("invalid node '{node}': tensor '{field}' (stored as '{node}.{field}'): {msg}")]
    Tensor {
        node: String,
        field: String,
        msg: String,
    },

    /// An integer value left the int32 range while the network ran.
    #[error("integer overflow in node '{node}' ({op}) at step {step} (0-based){sample}: {msg}")]
    Overflow {
        node: String,
        op: String,
        step: usize,
        /// ", sample N" or empty.
        sample: String,
        msg: String,
    },

    /// A float32 value became infinite or NaN while the network ran (float overflow).
    #[error("float32 overflow in node '{node}' ({op}){sample}: {msg}")]
    NonFinite {
        node: String,
        op: String,
        /// ", sample N" or empty.
        sample: String,
        msg: String,
    },

    /// A run argument (input array, steps, record list, threads) is invalid.
    #[error("invalid argument '{arg}': {msg}")]
    Arg { arg: String, msg: String },

    /// A run, a stream step or a network would need more memory (or threads) than the limit
    /// allows; checked before anything is allocated (`engine::limits`).
    #[error("resource limit for '{arg}': {msg}")]
    Limit { arg: String, msg: String },

    /// An event stream is invalid (coordinates, polarity, timestamps, offsets).
    #[error("invalid events{sample}: {msg}")]
    Events { sample: String, msg: String },

    /// An internal invariant did not hold (a bug); reported instead of panicking.
    #[error("internal error: {0}")]
    Internal(String),
}

/// Result alias used throughout the crate.
pub type Result<T> = std::result::Result<T, SnnError>;

impl SnnError {
    pub(crate) fn node(node: &str, op: &str, msg: impl Into<String>) -> Self {
        SnnError::Node {
            node: node.to_string(),
            op: op.to_string(),
            msg: msg.into(),
        }
    }

    pub(crate) fn tensor(node: &str, field: &str, msg: impl Into<String>) -> Self {
        SnnError::Tensor {
            node: node.to_string(),
            field: field.to_string(),
            msg: msg.into(),
        }
    }

    pub(crate) fn arg(arg: &str, msg: impl Into<String>) -> Self {
        SnnError::Arg {
            arg: arg.to_string(),
            msg: msg.into(),
        }
    }

    pub(crate) fn limit(arg: &str, msg: impl Into<String>) -> Self {
        SnnError::Limit {
            arg: arg.to_string(),
            msg: msg.into(),
        }
    }

    pub(crate) fn events(sample: Option<usize>, msg: impl Into<String>) -> Self {
        SnnError::Events {
            sample: sample.map(|b| format!(" (sample {b})")).unwrap_or_default(),
            msg: msg.into(),
        }
    }

    /// Attaches the sample index to an overflow or event error raised inside a batch.
    pub(crate) fn in_sample(self, b: usize) -> Self {
        match self {
            SnnError::Overflow {
                node,
                op,
                step,
                msg,
                ..
            } => SnnError::Overflow {
                node,
                op,
                step,
                sample: format!(", sample {b}"),
                msg,
            },
            SnnError::NonFinite { node, op, msg, .. } => SnnError::NonFinite {
                node,
                op,
                sample: format!(", sample {b}"),
                msg,
            },
            SnnError::Events { sample, msg } if sample.is_empty() => SnnError::Events {
                sample: format!(" (sample {b})"),
                msg,
            },
            other => other,
        }
    }
}

/// A zeroed vector of `n` elements, or an error naming `what` when the allocator refuses
/// (never an abort). The sizes were checked against the memory limit by the caller.
pub(crate) fn zeros<T: Clone + Default>(n: usize, arg: &str, what: &str) -> Result<Vec<T>> {
    let mut v: Vec<T> = Vec::new();
    v.try_reserve_exact(n).map_err(|_| {
        SnnError::limit(
            arg,
            format!(
                "cannot allocate {what} ({n} elements of {} bytes): out of memory",
                std::mem::size_of::<T>()
            ),
        )
    })?;
    v.resize(n, T::default());
    Ok(v)
}

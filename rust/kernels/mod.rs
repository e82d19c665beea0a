//! Inner loops of the engine: scatter of weight rows ([`linear`]) and kernel patches
//! ([`conv`]) for the active inputs of a node, pool window sums ([`pool`]), scans of whole
//! values ([`scan`]), and the runtime SIMD choice ([`simd`]). Written over contiguous slices of
//! output channels so that they auto-vectorise.

pub(crate) mod conv;
pub(crate) mod linear;
pub(crate) mod pool;
pub(crate) mod scan;
#[macro_use]
pub(crate) mod simd;
pub(crate) mod vnni;

pub(crate) use conv::{conv_gather, conv_gather_i16, conv_scatter, scan_active, Active, Geom};
pub(crate) use linear::{linear_rows, linear_rows_i16};
pub(crate) use pool::{pool_dense_exact, pool_dense_sums, pool_scatter_sums};
pub(crate) use scan::{append_nonzero, collect_nonzero, fanout_sum, fill_bias};

#[cfg(test)]
mod tests;

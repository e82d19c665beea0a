//! Weights: the stored element types ([`Weight`]: `f32`, `i8` for int8 and int4, `i16`), the
//! accumulators that add them ([`Mac`]), a node's typed weight buffer ([`Weights`]) and the
//! visitor that hands a kernel the typed slice.

use std::fmt::Debug;

use super::weight_buf::WeightBuf;
use super::Value;

/// A stored weight element.
pub(crate) trait Weight: Copy + Send + Sync + Debug + 'static {
    /// The slice as int8 weights, if this is the int8 type (the 16-bit-lane scatter of
    /// [`crate::kernels::linear_rows_i16`] exists only for them).
    fn as_i8(_w: &[Self]) -> Option<&[i8]> {
        None
    }
}

impl Weight for f32 {}
impl Weight for i8 {
    fn as_i8(w: &[i8]) -> Option<&[i8]> {
        Some(w)
    }
}
impl Weight for i16 {}

/// An accumulator that can add weights of type `W` (unit input) or products `x*w`.
///
/// The integer implementations use wrapping arithmetic only because the caller has proven
/// (with the per-node bound, see `network.rs`) that no partial sum leaves the type's range;
/// they never wrap in practice, and the wrapping ops keep debug builds free of panics.
pub(crate) trait Mac<W: Weight>: Copy + Send + Sync + Default + Debug + 'static {
    /// `self + w` (the input element is 1: a spike).
    fn add_w(self, w: W) -> Self;
    /// `self + x*w`.
    fn add_xw(self, x: Self, w: W) -> Self;
}

impl Mac<f32> for f32 {
    #[inline(always)]
    fn add_w(self, w: f32) -> f32 {
        self + w
    }
    #[inline(always)]
    fn add_xw(self, x: f32, w: f32) -> f32 {
        // Two roundings (product, then sum): Rust never contracts this into an FMA.
        self + x * w
    }
}

macro_rules! int_mac {
    ($acc:ty, $w:ty) => {
        impl Mac<$w> for $acc {
            #[inline(always)]
            fn add_w(self, w: $w) -> $acc {
                self.wrapping_add(w as $acc)
            }
            #[inline(always)]
            fn add_xw(self, x: $acc, w: $w) -> $acc {
                self.wrapping_add(x.wrapping_mul(w as $acc))
            }
        }
    };
}
int_mac!(i32, i8);
int_mac!(i32, i16);
int_mac!(i64, i8);
int_mac!(i64, i16);

/// Weights of one linear/conv node in the engine's layout.
#[derive(Debug, Clone)]
pub(crate) enum Weights {
    F32(WeightBuf<f32>),
    I8(WeightBuf<i8>),
    I16(WeightBuf<i16>),
}

/// Something generic over the weight type, called by [`Value::visit_weights`] with the typed
/// weight slice of a node. `V` is the network's value type; the bounds say which accumulators
/// the visitor may use with these weights: `V` itself and `V::Wide`.
pub(crate) trait WeightVisitor<V: Value> {
    type Out;
    fn visit<W: Weight>(self, w: &[W]) -> Self::Out
    where
        V: Mac<W>,
        V::Wide: Mac<W>;
}

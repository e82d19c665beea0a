//! The value types of the engine (`f32` for float32 networks, `i32` for integer networks):
//! what a run's input data is, how an input element is checked, how a file tensor converts.

use crate::format::TensorData;
use crate::neurons::NeuronMath;

/// Input data of a run: float32 for float networks, int32 for integer networks.
#[derive(Debug, Clone, Copy)]
pub enum Data<'a> {
    F32(&'a [f32]),
    I32(&'a [i32]),
}

impl Data<'_> {
    pub fn len(&self) -> usize {
        match self {
            Data::F32(v) => v.len(),
            Data::I32(v) => v.len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub(crate) fn dtype(&self) -> &'static str {
        match self {
            Data::F32(_) => "float32",
            Data::I32(_) => "int32",
        }
    }
}

/// What the engine needs of a value type beyond [`Value`].
pub(crate) trait EngineValue: NeuronMath + FromTensor {
    /// The typed slice of `d`, if its dtype is this type.
    fn data<'a>(d: Data<'a>) -> Option<&'a [Self]>;
    /// Whether a static input element is valid: finite (float) or in [-128, 255] (int: either
    /// 8-bit range; `Model::run_static` has checked the model's own range, signed or unsigned).
    /// Branch-free, so that a whole input is checked at SIMD width.
    fn static_ok(v: Self) -> bool;
    /// Why a static input element is not valid (called only where [`Self::static_ok`] is false).
    fn static_error(v: Self) -> String;
    /// Whether a per-step input element is valid: finite (float); any int32.
    fn frame_ok(v: Self) -> bool;
    /// Why a per-step input element is not valid.
    fn frame_error(v: Self) -> String;
}

impl EngineValue for f32 {
    fn data<'a>(d: Data<'a>) -> Option<&'a [f32]> {
        match d {
            Data::F32(v) => Some(v),
            _ => None,
        }
    }
    fn static_ok(v: f32) -> bool {
        v.is_finite()
    }
    fn static_error(v: f32) -> String {
        format!("{v} is not finite")
    }
    fn frame_ok(v: f32) -> bool {
        v.is_finite()
    }
    fn frame_error(v: f32) -> String {
        Self::static_error(v)
    }
}

impl EngineValue for i32 {
    fn data<'a>(d: Data<'a>) -> Option<&'a [i32]> {
        match d {
            Data::I32(v) => Some(v),
            _ => None,
        }
    }
    fn static_ok(v: i32) -> bool {
        (-128..=255).contains(&v)
    }
    fn static_error(v: i32) -> String {
        format!("{v} is outside the 8-bit input ranges [-128, 255]")
    }
    fn frame_ok(_v: i32) -> bool {
        true
    }
    fn frame_error(v: i32) -> String {
        format!("{v} is not a valid event count")
    }
}

/// Conversion of file tensors to the value type.
pub(crate) trait FromTensor: Sized {
    fn from_tensor(t: &TensorData) -> Option<Vec<Self>>;
}
impl FromTensor for f32 {
    fn from_tensor(t: &TensorData) -> Option<Vec<f32>> {
        match t {
            TensorData::F32(v) => Some(v.clone()),
            _ => None,
        }
    }
}
impl FromTensor for i32 {
    fn from_tensor(t: &TensorData) -> Option<Vec<i32>> {
        match t {
            TensorData::I32(v) => Some(v.clone()),
            _ => None,
        }
    }
}

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
    /// Checks a static input element: finite (float) or in [-128, 255] (int: either 8-bit
    /// range; `Model::run_static` has checked the model's own range, signed or unsigned).
    fn check_static(v: Self) -> std::result::Result<(), String>;
    /// Checks a per-step input element: finite (float); any int32.
    fn check_frame(v: Self) -> std::result::Result<(), String>;
}

impl EngineValue for f32 {
    fn data<'a>(d: Data<'a>) -> Option<&'a [f32]> {
        match d {
            Data::F32(v) => Some(v),
            _ => None,
        }
    }
    fn check_static(v: f32) -> std::result::Result<(), String> {
        if v.is_finite() {
            Ok(())
        } else {
            Err(format!("{v} is not finite"))
        }
    }
    fn check_frame(v: f32) -> std::result::Result<(), String> {
        Self::check_static(v)
    }
}

impl EngineValue for i32 {
    fn data<'a>(d: Data<'a>) -> Option<&'a [i32]> {
        match d {
            Data::I32(v) => Some(v),
            _ => None,
        }
    }
    fn check_static(v: i32) -> std::result::Result<(), String> {
        if (-128..=255).contains(&v) {
            Ok(())
        } else {
            Err(format!("{v} is outside the 8-bit input ranges [-128, 255]"))
        }
    }
    fn check_frame(_v: i32) -> std::result::Result<(), String> {
        Ok(())
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

//! The two numeric worlds of the engine behind small traits, so that every kernel and the
//! simulation loop are written once and monomorphised:
//!
//! * values ([`Value`]): `f32` (float precision) or `i32` (integer precision);
//! * weights ([`Weight`]): `f32`, `i8` (int8 and int4) or `i16` (int16);
//! * accumulators ([`Mac`]): `f32`; `i32` on the fast integer path (used only where a
//!   compile-time bound proves that nothing can overflow) and `i64` on the checked path.

mod weight_buf;
mod weights;

use std::fmt::Debug;

pub(crate) use weight_buf::WeightBuf;
pub(crate) use weights::{Mac, Weight, WeightVisitor, Weights};

/// Numeric precision of a network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    Float32,
    Int,
}

impl Precision {
    pub fn as_str(self) -> &'static str {
        match self {
            Precision::Float32 => "float32",
            Precision::Int => "int",
        }
    }
}

/// The value type of a network (`f32` or `i32`).
pub(crate) trait Value:
    Copy + Send + Sync + PartialEq + PartialOrd + Default + Debug + 'static
{
    /// A wider type for sums that must be checked before narrowing (`f32` / `i64`).
    type Wide: Copy + Send + Sync + Default + Debug + PartialEq + 'static;

    const ZERO: Self;
    const ONE: Self;
    /// The bits of a value that are set exactly when it is nonzero (float: all but the sign,
    /// so that -0.0 is zero and NaN is not), see [`Value::bits`].
    const NONZERO_BITS: u32;
    const PRECISION: Precision;

    /// `x != 0` (for floats, `-0.0` counts as zero).
    fn is_nonzero(self) -> bool;
    /// The values' bit patterns (both value types are 4 bytes).
    fn bits(x: &[Self]) -> &[u32];
    /// `|x|` as i64 for integers (overflow bounds); 0 for floats.
    fn abs_i64(self) -> i64;
    fn to_f64(self) -> f64;
    fn wide(self) -> Self::Wide;
    fn wide_add(a: Self::Wide, b: Self::Wide) -> Self::Wide;
    /// `self + o` in the value type, for sums the caller has proven to stay in range (int:
    /// wrapping, so that the loop vectorises).
    fn add_exact(self, o: Self) -> Self;
    /// The value back from a wide sum; `None` when it does not fit (integer overflow).
    fn narrow(w: Self::Wide) -> Option<Self>;
    /// `scale` op: float `x*mul + shift`; int `fx(mul, x, f) + shift` (`None` on overflow).
    fn scale_elem(x: Self, mul: Self, shift: Self, f: u32) -> Option<Self>;
    /// `avgpool2d` of a window sum: float `sum / k`; int `fx(m, sum, f)` (`None` on overflow).
    fn avg_elem(sum: Self::Wide, k: u32, m: i32, f: u32) -> Option<Self>;
    /// The slice as int32 values, if this is the int32 type.
    fn as_i32_mut(_v: &mut [Self]) -> Option<&mut [i32]> {
        None
    }
    /// The slice as int32 values, if this is the int32 type.
    fn as_i32(_v: &[Self]) -> Option<&[i32]> {
        None
    }
    /// Calls `vis` with the typed weight slice; an error if the dtype does not belong to this
    /// precision (cannot happen for networks built by `engine::compile`).
    fn visit_weights<Vis: WeightVisitor<Self>>(
        w: &Weights,
        vis: Vis,
    ) -> Result<Vis::Out, &'static str>;
}

/// Fixed-point product `fx(m, x, f) = (m*x + 2^(f-1)) >> f` in int64, arithmetic shift.
/// `1 <= f <= 31` is validated when the network is loaded.
#[inline(always)]
pub(crate) fn fx(m: i64, x: i64, f: u32) -> i64 {
    // |m|, |x| < 2^31 so m*x and the rounding term fit in i64.
    (m * x + (1i64 << (f - 1))) >> f
}

#[inline(always)]
fn fits_i32(v: i64) -> bool {
    v == (v as i32) as i64
}

impl Value for f32 {
    type Wide = f32;
    const ZERO: f32 = 0.0;
    const ONE: f32 = 1.0;
    const PRECISION: Precision = Precision::Float32;
    const NONZERO_BITS: u32 = 0x7fff_ffff;

    #[inline(always)]
    fn bits(x: &[f32]) -> &[u32] {
        // SAFETY: f32 and u32 have the same size and alignment, and every bit pattern is a
        // valid u32.
        unsafe { std::slice::from_raw_parts(x.as_ptr().cast(), x.len()) }
    }

    #[inline(always)]
    fn is_nonzero(self) -> bool {
        self != 0.0
    }
    #[inline(always)]
    fn abs_i64(self) -> i64 {
        0
    }
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self as f64
    }
    #[inline(always)]
    fn wide(self) -> f32 {
        self
    }
    #[inline(always)]
    fn wide_add(a: f32, b: f32) -> f32 {
        a + b
    }
    #[inline(always)]
    fn add_exact(self, o: f32) -> f32 {
        self + o
    }
    #[inline(always)]
    fn narrow(w: f32) -> Option<f32> {
        Some(w)
    }
    #[inline(always)]
    fn scale_elem(x: f32, mul: f32, shift: f32, _f: u32) -> Option<f32> {
        Some(x * mul + shift)
    }
    #[inline(always)]
    fn avg_elem(sum: f32, k: u32, _m: i32, _f: u32) -> Option<f32> {
        Some(sum / k as f32)
    }
    fn visit_weights<Vis: WeightVisitor<f32>>(
        w: &Weights,
        vis: Vis,
    ) -> Result<Vis::Out, &'static str> {
        match w {
            Weights::F32(w) => Ok(vis.visit(&w[..])),
            _ => Err("integer weights in a float32 network"),
        }
    }
}

impl Value for i32 {
    type Wide = i64;
    const ZERO: i32 = 0;
    const ONE: i32 = 1;
    const PRECISION: Precision = Precision::Int;
    const NONZERO_BITS: u32 = u32::MAX;

    #[inline(always)]
    fn bits(x: &[i32]) -> &[u32] {
        // SAFETY: i32 and u32 have the same size and alignment, and every bit pattern is a
        // valid u32.
        unsafe { std::slice::from_raw_parts(x.as_ptr().cast(), x.len()) }
    }

    #[inline(always)]
    fn is_nonzero(self) -> bool {
        self != 0
    }
    #[inline(always)]
    fn abs_i64(self) -> i64 {
        (self as i64).abs()
    }
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self as f64
    }
    #[inline(always)]
    fn wide(self) -> i64 {
        self as i64
    }
    #[inline(always)]
    fn add_exact(self, o: i32) -> i32 {
        self.wrapping_add(o)
    }
    #[inline(always)]
    fn wide_add(a: i64, b: i64) -> i64 {
        // Sums of at most a few million int32 values: far from the i64 range.
        a.wrapping_add(b)
    }
    #[inline(always)]
    fn narrow(w: i64) -> Option<i32> {
        if fits_i32(w) {
            Some(w as i32)
        } else {
            None
        }
    }
    #[inline(always)]
    fn scale_elem(x: i32, mul: i32, shift: i32, f: u32) -> Option<i32> {
        let v = fx(mul as i64, x as i64, f) + shift as i64;
        Self::narrow(v)
    }
    #[inline(always)]
    fn avg_elem(sum: i64, _k: u32, m: i32, f: u32) -> Option<i32> {
        if fits_i32(sum) {
            // |m|, |sum| <= 2^31: the product and the rounding term fit in i64.
            return Self::narrow(fx(m as i64, sum, f));
        }
        // A wider window sum: m*sum needs i128.
        let p = (m as i128) * (sum as i128) + (1i128 << (f - 1));
        let v = p >> f;
        if v >= i32::MIN as i128 && v <= i32::MAX as i128 {
            Some(v as i32)
        } else {
            None
        }
    }
    fn as_i32_mut(v: &mut [i32]) -> Option<&mut [i32]> {
        Some(v)
    }
    fn as_i32(v: &[i32]) -> Option<&[i32]> {
        Some(v)
    }
    fn visit_weights<Vis: WeightVisitor<i32>>(
        w: &Weights,
        vis: Vis,
    ) -> Result<Vis::Out, &'static str> {
        match w {
            Weights::I8(w) => Ok(vis.visit(&w[..])),
            Weights::I16(w) => Ok(vis.visit(&w[..])),
            Weights::F32(_) => Err("float weights in an integer network"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fx_rounds_half_up_with_floor_shift() {
        // (3*5 + 2) >> 2 = 17 >> 2 = 4  (15/4 = 3.75 -> 4)
        assert_eq!(fx(3, 5, 2), 4);
        // exact halves round up: 6/4 = 1.5 -> 2 ; -6/4 = -1.5 -> -1 (floor(-1.5 + 0.5))
        assert_eq!(fx(1, 6, 2), 2);
        assert_eq!(fx(1, -6, 2), -1);
        // negatives: -7/4 = -1.75 -> floor(-1.25) = -2
        assert_eq!(fx(1, -7, 2), -2);
        assert_eq!(fx(-1, 7, 2), -2);
        // -5/4 = -1.25 -> floor(-0.75) = -1
        assert_eq!(fx(1, -5, 2), -1);
        // f = 1: (x + 1) >> 1
        assert_eq!(fx(1, 3, 1), 2);
        assert_eq!(fx(1, -3, 1), -1);
        // f = 31 with large operands stays exact in i64
        assert_eq!(fx(i32::MAX as i64, i32::MAX as i64, 31), 2147483646);
        assert_eq!(fx(i32::MIN as i64, i32::MIN as i64, 31), 1i64 << 31);
    }

    #[test]
    fn scale_and_avg_detect_overflow() {
        assert_eq!(<i32 as Value>::scale_elem(1 << 20, 1 << 20, 0, 1), None);
        assert_eq!(<i32 as Value>::scale_elem(10, 3, 1, 1), Some(16));
        assert_eq!(<i32 as Value>::avg_elem(9, 4, 16384, 16), Some(2)); // 9/4 = 2.25
        assert_eq!(<i32 as Value>::avg_elem(10, 4, 16384, 16), Some(3)); // 2.5 -> 3
        assert_eq!(<i32 as Value>::avg_elem(-10, 4, 16384, 16), Some(-2)); // -2.5 -> -2
        assert_eq!(
            <i32 as Value>::avg_elem(i32::MAX as i64 * 4, 4, 1 << 20, 18),
            None
        );
        assert_eq!(<f32 as Value>::avg_elem(3.0, 4, 0, 0), Some(0.75));
    }

    #[test]
    fn int_mac_matches_i64() {
        let a: i32 = 1000;
        assert_eq!(Mac::<i8>::add_xw(a, 7, -128i8), 1000 - 896);
        assert_eq!(Mac::<i16>::add_w(a, -300i16), 700);
        assert_eq!(Mac::<i8>::add_xw(5i64, 3, 4i8), 17);
    }
}

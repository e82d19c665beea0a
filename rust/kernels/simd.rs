//! Runtime choice of the instruction set a kernel runs with (x86_64): its portable body, or the
//! same body compiled for AVX2 or for AVX-512. All are the same Rust code: every output element
//! sees the same operations in the same order, only the vector width differs, so the results
//! are bit-identical and the choice is purely one of speed.
//!
//! The level is detected once; `SNNSIM_SIMD=portable|avx2|avx512` (read at first use) or
//! [`set_level`] cap it, so the tests can run every path on one machine. A kernel is declared
//! with [`dispatch!`], which writes the AVX2 and AVX-512 twins of its portable body and the
//! public function that picks one.

use std::sync::atomic::{AtomicU8, Ordering};

/// An instruction-set level, ordered from the most portable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Level {
    /// Plain Rust for the build target (SSE2 on x86_64).
    Portable = 0,
    /// AVX2 (256-bit vectors).
    Avx2 = 1,
    /// AVX-512 F/BW/DQ/VL (512-bit vectors).
    Avx512 = 2,
}

impl Level {
    /// The level's name as `SNNSIM_SIMD` and [`set_level`] spell it (used by the bindings).
    #[cfg_attr(not(feature = "python"), allow(dead_code))]
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Level::Portable => "portable",
            Level::Avx2 => "avx2",
            Level::Avx512 => "avx512",
        }
    }

    /// Parses a level name (`portable`, `avx2`, `avx512`).
    pub(crate) fn parse(s: &str) -> Option<Level> {
        match s {
            "portable" => Some(Level::Portable),
            "avx2" => Some(Level::Avx2),
            "avx512" => Some(Level::Avx512),
            _ => None,
        }
    }

    fn from_u8(v: u8) -> Level {
        match v {
            2 => Level::Avx512,
            1 => Level::Avx2,
            _ => Level::Portable,
        }
    }
}

/// The best level this CPU supports.
pub(crate) fn detected() -> Level {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx512f")
            && std::is_x86_feature_detected!("avx512bw")
            && std::is_x86_feature_detected!("avx512dq")
            && std::is_x86_feature_detected!("avx512vl")
        {
            return Level::Avx512;
        }
        if std::is_x86_feature_detected!("avx2") {
            return Level::Avx2;
        }
    }
    Level::Portable
}

const UNSET: u8 = u8::MAX;
static CHOSEN: AtomicU8 = AtomicU8::new(UNSET);

/// The level kernels run with: the detected one, capped by `SNNSIM_SIMD` or [`set_level`].
#[inline]
pub(crate) fn level() -> Level {
    let v = CHOSEN.load(Ordering::Relaxed);
    if v != UNSET {
        return Level::from_u8(v);
    }
    let cap = std::env::var("SNNSIM_SIMD")
        .ok()
        .and_then(|s| Level::parse(s.trim()));
    set_level(cap)
}

/// Caps the level at `cap` (`None`: the detected level); returns the level now in effect,
/// never above what the CPU supports.
pub(crate) fn set_level(cap: Option<Level>) -> Level {
    let d = detected();
    let l = cap.map_or(d, |c| c.min(d));
    CHOSEN.store(l as u8, Ordering::Relaxed);
    l
}

/// Declares a kernel: `$imp` is its portable body (`#[inline(always)]`); this writes
/// `unsafe fn $name_avx2` / `$name_avx512` (the body compiled with those target features) and
/// the crate-visible `fn $name` that calls the one [`level`] picks.
macro_rules! dispatch {
    (
        $(#[$doc:meta])*
        pub fn $name:ident [$($gen:tt)*] ($($arg:ident : $ty:ty),* $(,)?) $(-> $ret:ty)? => $imp:ident
        where [$($bounds:tt)*]
    ) => {
        $(#[$doc])*
        #[inline]
        pub(crate) fn $name<$($gen)*>($($arg: $ty),*) $(-> $ret)? where $($bounds)* {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2")]
                unsafe fn avx2<$($gen)*>($($arg: $ty),*) $(-> $ret)? where $($bounds)* {
                    $imp($($arg),*)
                }
                #[target_feature(enable = "avx2,avx512f,avx512bw,avx512dq,avx512vl")]
                unsafe fn avx512<$($gen)*>($($arg: $ty),*) $(-> $ret)? where $($bounds)* {
                    $imp($($arg),*)
                }
                match $crate::kernels::simd::level() {
                    // SAFETY: `level` never exceeds what the CPU supports (checked at run time).
                    $crate::kernels::simd::Level::Avx512 => return unsafe { avx512($($arg),*) },
                    $crate::kernels::simd::Level::Avx2 => return unsafe { avx2($($arg),*) },
                    $crate::kernels::simd::Level::Portable => {}
                }
            }
            $imp($($arg),*)
        }
    };
}

pub(crate) use dispatch;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_parse_order_and_cap() {
        for l in [Level::Portable, Level::Avx2, Level::Avx512] {
            assert_eq!(Level::parse(l.as_str()), Some(l));
        }
        assert!(Level::Portable < Level::Avx2 && Level::Avx2 < Level::Avx512);
        assert_eq!(Level::parse("sse9"), None);
        let d = detected();
        assert_eq!(set_level(Some(Level::Portable)), Level::Portable);
        assert_eq!(level(), Level::Portable);
        assert_eq!(set_level(Some(Level::Avx512)), d.min(Level::Avx512));
        assert_eq!(set_level(None), d);
    }
}

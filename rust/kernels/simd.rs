//! Runtime choice between the portable body of a kernel and its AVX2 compilation (x86_64).
//! Both are the same Rust code: every output element sees the same operations in the same
//! order, only the vector width differs, so the results are bit-identical.

#[cfg(target_arch = "x86_64")]
#[inline]
pub(crate) fn has_avx2() -> bool {
    std::is_x86_feature_detected!("avx2")
}

/// Generates `pub fn $name` that runs `$imp` compiled for AVX2 when the CPU has it.
macro_rules! dispatch {
    (
        $(#[$doc:meta])*
        pub fn $name:ident [$($gen:tt)*] ($($arg:ident : $ty:ty),* $(,)?) $(-> $ret:ty)? => $imp:ident, $avx:ident
        where [$($bounds:tt)*]
    ) => {
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2")]
        unsafe fn $avx<$($gen)*>($($arg: $ty),*) $(-> $ret)? where $($bounds)* {
            $imp($($arg),*)
        }

        $(#[$doc])*
        #[inline]
        pub fn $name<$($gen)*>($($arg: $ty),*) $(-> $ret)? where $($bounds)* {
            #[cfg(target_arch = "x86_64")]
            {
                if $crate::kernels::simd::has_avx2() {
                    // SAFETY: the CPU supports AVX2 (checked at run time).
                    return unsafe { $avx($($arg),*) };
                }
            }
            $imp($($arg),*)
        }
    };
}

pub(crate) use dispatch;

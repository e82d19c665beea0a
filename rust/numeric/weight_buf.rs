//! Weight storage. Large weight tensors are placed in 2 MiB-aligned memory that the kernel is
//! asked to back with transparent huge pages (Linux `madvise(MADV_HUGEPAGE)`): a sparse
//! scatter touches a few hundred scattered weight rows per step, and with 4 KiB pages every row
//! costs a TLB miss. Elsewhere, or if the allocation fails, the tensor stays in a `Vec`.

use std::alloc::Layout;
use std::fmt;
use std::ops::Deref;
use std::ptr::NonNull;

/// Tensors at least this large go to huge-page memory.
const HUGE_MIN_BYTES: usize = 1 << 20;
const HUGE_ALIGN: usize = 2 << 20;

#[cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]
mod sys {
    extern "C" {
        fn madvise(
            addr: *mut std::ffi::c_void,
            len: usize,
            advice: std::ffi::c_int,
        ) -> std::ffi::c_int;
    }
    const MADV_HUGEPAGE: std::ffi::c_int = 14;

    /// Advises huge pages for `[p, p + len)`; a refusal only costs speed.
    pub(crate) fn advise_huge(p: *mut u8, len: usize) {
        // SAFETY: the range is a live allocation of ours; madvise does not touch its contents.
        unsafe {
            madvise(p.cast(), len, MADV_HUGEPAGE);
        }
    }
}

#[cfg(not(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
)))]
mod sys {
    pub fn advise_huge(_p: *mut u8, _len: usize) {}
}

enum Inner<T> {
    Vec(Vec<T>),
    Huge {
        ptr: NonNull<T>,
        len: usize,
        layout: Layout,
    },
}

/// An immutable buffer of weights (`f32`, `i8`, `i16`), readable as a slice.
pub(crate) struct WeightBuf<T: Copy> {
    inner: Inner<T>,
}

// SAFETY: the buffer owns its memory exclusively and is never mutated after construction, so
// sharing or sending it is as safe as for a `Vec<T>`.
unsafe impl<T: Copy + Send> Send for WeightBuf<T> {}
unsafe impl<T: Copy + Sync> Sync for WeightBuf<T> {}

impl<T: Copy> WeightBuf<T> {
    /// Takes `v`, moving large tensors to huge-page memory.
    pub(crate) fn new(v: Vec<T>) -> Self {
        let bytes = std::mem::size_of_val(v.as_slice());
        if bytes >= HUGE_MIN_BYTES && cfg!(target_os = "linux") {
            if let Some(b) = Self::huge_copy(&v) {
                return b;
            }
        }
        WeightBuf {
            inner: Inner::Vec(v),
        }
    }

    fn huge_copy(src: &[T]) -> Option<Self> {
        let bytes = std::mem::size_of_val(src);
        let size = bytes.checked_add(HUGE_ALIGN - 1)? & !(HUGE_ALIGN - 1);
        if std::mem::align_of::<T>() > HUGE_ALIGN || size == 0 {
            return None;
        }
        let layout = Layout::from_size_align(size, HUGE_ALIGN).ok()?;
        // SAFETY: `layout` has a non-zero size.
        let raw = unsafe { std::alloc::alloc(layout) };
        let ptr = NonNull::new(raw)?;
        sys::advise_huge(raw, size);
        // SAFETY: `raw` is a fresh allocation of at least `bytes` bytes, aligned for `T`
        // (2 MiB >= align_of::<T>()), not overlapping `src`; `T: Copy` needs no drop.
        unsafe {
            std::ptr::copy_nonoverlapping(src.as_ptr(), raw.cast::<T>(), src.len());
        }
        Some(WeightBuf {
            inner: Inner::Huge {
                ptr: ptr.cast(),
                len: src.len(),
                layout,
            },
        })
    }
}

impl<T: Copy> Deref for WeightBuf<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        match &self.inner {
            Inner::Vec(v) => v,
            // SAFETY: `ptr` points to `len` initialised elements owned by `self`.
            Inner::Huge { ptr, len, .. } => unsafe {
                std::slice::from_raw_parts(ptr.as_ptr(), *len)
            },
        }
    }
}

impl<T: Copy> Drop for WeightBuf<T> {
    fn drop(&mut self) {
        if let Inner::Huge { ptr, layout, .. } = &self.inner {
            // SAFETY: allocated in `huge_copy` with this layout and not freed before.
            unsafe { std::alloc::dealloc(ptr.as_ptr().cast(), *layout) };
        }
    }
}

impl<T: Copy> Clone for WeightBuf<T> {
    fn clone(&self) -> Self {
        WeightBuf::new(self.to_vec())
    }
}

impl<T: Copy + fmt::Debug> fmt::Debug for WeightBuf<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WeightBuf(len = {})", self.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_and_large_buffers_read_back() {
        let small: Vec<i8> = (0..1000).map(|i| (i % 100) as i8).collect();
        let b = WeightBuf::new(small.clone());
        assert_eq!(&b[..], &small[..]);
        let large: Vec<f32> = (0..700_000).map(|i| i as f32 * 0.5).collect();
        let b = WeightBuf::new(large.clone());
        assert_eq!(&b[..], &large[..]);
        let c = b.clone();
        drop(b);
        assert_eq!(&c[..], &large[..]);
        if let Inner::Huge { ptr, .. } = &c.inner {
            assert_eq!(ptr.as_ptr() as usize % HUGE_ALIGN, 0);
        }
    }
}

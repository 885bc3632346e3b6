//! Scratch buffers owned per worker thread, allocated once, so parallel kernels need no allocation.

use std::cell::UnsafeCell;

/// One `T` per thread of a [`ThreadPool`](crate::threadpool::ThreadPool), indexed by the thread
/// index the pool passes to its jobs.
pub struct PerThread<T> {
    slots: Vec<UnsafeCell<T>>,
}

// SAFETY: slot `i` is only touched by the pool thread with index `i` (see `get`).
unsafe impl<T: Send> Sync for PerThread<T> {}

impl<T> PerThread<T> {
    pub fn new(n_threads: usize, mut make: impl FnMut() -> T) -> Self {
        PerThread {
            slots: (0..n_threads.max(1))
                .map(|_| UnsafeCell::new(make()))
                .collect(),
        }
    }

    /// The slot of pool thread `tid`.
    ///
    /// # Safety
    /// Only the thread running as `tid` in the current pool job may call this, and it must not
    /// hold two references to its slot at once.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn get(&self, tid: usize) -> &mut T {
        &mut *self.slots[tid].get()
    }
}

/// A raw pointer that may cross threads: parallel kernels write disjoint elements of one output.
#[derive(Clone, Copy)]
pub struct SendPtr<T>(pub *mut T);
unsafe impl<T> Send for SendPtr<T> {}
unsafe impl<T> Sync for SendPtr<T> {}

impl<T> SendPtr<T> {
    /// The pointer. A method (rather than the field) so closures capture the whole `Send` wrapper.
    #[inline]
    pub fn get(self) -> *mut T {
        self.0
    }
}

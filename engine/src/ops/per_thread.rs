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

    /// Bytes held, as `size(slot)` summed over the slots (for memory accounting).
    pub fn bytes_with(&self, size: impl Fn(&T) -> usize) -> usize {
        // SAFETY: a shared read of each slot, by the owner, while no pool job runs.
        self.slots.iter().map(|s| size(unsafe { &*s.get() })).sum()
    }

    /// Slot `i`: a pool thread's (indexed by its thread index) or a chunk's (by chunk index).
    ///
    /// # Safety
    /// At any time only one thread may use slot `i` (the pool thread with that index, or the one
    /// running chunk `i`), holding one reference to it at once.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn get(&self, i: usize) -> &mut T {
        &mut *self.slots[i].get()
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

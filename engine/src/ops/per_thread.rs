//! Scratch buffers owned per worker thread, allocated once, so parallel kernels need no allocation.

use std::sync::Mutex;

/// One `T` per thread of a rayon pool, plus one for callers outside the pool.
pub struct PerThread<T> {
    slots: Vec<Mutex<T>>,
}

impl<T> PerThread<T> {
    pub fn new(n_threads: usize, mut make: impl FnMut() -> T) -> Self {
        PerThread {
            slots: (0..n_threads + 1).map(|_| Mutex::new(make())).collect(),
        }
    }

    /// Runs `f` with the calling thread's slot. Slots are uncontended: each pool thread maps to
    /// its own index, so the lock is a formality that keeps this safe.
    pub fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        let i = rayon::current_thread_index()
            .map(|i| i.min(self.slots.len() - 2))
            .unwrap_or(self.slots.len() - 1);
        let mut g = self.slots[i].lock().unwrap_or_else(|e| e.into_inner());
        f(&mut g)
    }

    /// Mutable access to every slot (e.g. to grow them).
    pub fn for_each_mut(&mut self, mut f: impl FnMut(&mut T)) {
        for s in &mut self.slots {
            f(s.get_mut().unwrap_or_else(|e| e.into_inner()));
        }
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

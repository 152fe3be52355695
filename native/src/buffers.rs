//! Large I/O buffers kept between files. The allocator maps every block of 256 KiB and more
//! afresh (see `init` in lib.rs), so a new read or frame buffer per file is faulted in page
//! by page, zeroed by the kernel: a first backup of the Linux tree took 140k page faults
//! in the enqueuer's large-file reads alone. Buffers handed back here are reused instead,
//! up to [`KEEP_BYTES`] in all, so a process keeps at most that much for them.

use std::ops::{Deref, DerefMut};
use std::sync::Mutex;

/// Most bytes of free buffers the process keeps.
const KEEP_BYTES: usize = 24 << 20;

/// Free buffers, at most `keep` bytes of them.
pub struct Pool {
    free: Mutex<Vec<Vec<u8>>>,
    keep: usize,
}

static POOL: Pool = Pool::new(KEEP_BYTES);

/// A buffer from a pool; it goes back there when dropped.
pub struct Pooled {
    v: Vec<u8>,
    pool: &'static Pool,
}

impl Deref for Pooled {
    type Target = Vec<u8>;
    fn deref(&self) -> &Vec<u8> {
        &self.v
    }
}

impl DerefMut for Pooled {
    fn deref_mut(&mut self) -> &mut Vec<u8> {
        &mut self.v
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        self.pool.give(std::mem::take(&mut self.v));
    }
}

impl Pool {
    pub const fn new(keep: usize) -> Self {
        Pool {
            free: Mutex::new(Vec::new()),
            keep,
        }
    }

    /// The smallest free buffer of at least `capacity` bytes (a large one is not spent on
    /// a small need).
    fn reuse(&self, capacity: usize) -> Option<Vec<u8>> {
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        let i = (0..free.len())
            .filter(|&i| free[i].capacity() >= capacity)
            .min_by_key(|&i| free[i].capacity())?;
        Some(free.swap_remove(i))
    }

    fn give(&self, v: Vec<u8>) {
        if v.capacity() == 0 {
            return;
        }
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        let kept: usize = free.iter().map(Vec::capacity).sum();
        if kept + v.capacity() <= self.keep {
            free.push(v);
        }
    }

    /// A buffer of exactly `len` bytes whose content is unspecified (zero when new, else
    /// what its last user left): for reads into it.
    pub fn filled(&'static self, len: usize) -> Pooled {
        let v = match self.reuse(len) {
            Some(mut v) => {
                v.resize(len, 0); // no-op when it was this long already; zeroes only growth
                v.truncate(len);
                v
            }
            None => vec![0u8; len],
        };
        Pooled { v, pool: self }
    }

    /// An empty buffer with room for `capacity` bytes: for appending to.
    pub fn empty(&'static self, capacity: usize) -> Pooled {
        let v = match self.reuse(capacity) {
            Some(mut v) => {
                v.clear();
                v
            }
            None => Vec::with_capacity(capacity),
        };
        Pooled { v, pool: self }
    }

    #[cfg(test)]
    fn kept(&self) -> usize {
        let free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        free.iter().map(Vec::capacity).sum()
    }
}

/// [`Pool::filled`] of the process's pool.
pub fn filled(len: usize) -> Pooled {
    POOL.filled(len)
}

/// [`Pool::empty`] of the process's pool.
pub fn empty(capacity: usize) -> Pooled {
    POOL.empty(capacity)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(keep: usize) -> &'static Pool {
        Box::leak(Box::new(Pool::new(keep)))
    }

    #[test]
    fn buffers_are_reused_and_sized_as_asked() {
        let p = pool(8 << 20);
        let mut a = p.filled(1 << 20);
        a[0] = 7;
        let addr = a.as_ptr();
        drop(a);
        let b = p.filled(1000);
        assert_eq!(b.len(), 1000);
        assert_eq!(b.as_ptr(), addr, "the free buffer is reused");
        drop(b);
        let e = p.empty(1 << 20);
        assert!(e.is_empty() && e.capacity() >= 1 << 20);
        assert_eq!(e.as_ptr(), addr);
        drop(e);
        // None free is large enough: a new one.
        let g = p.filled(2 << 20);
        assert_eq!(g.len(), 2 << 20);
        assert_ne!(g.as_ptr(), addr);
    }

    #[test]
    fn the_pool_keeps_at_most_its_limit() {
        let p = pool(8 << 20);
        let big: Vec<Pooled> = (0..4).map(|_| p.filled(3 << 20)).collect();
        drop(big);
        assert_eq!(p.kept(), 6 << 20, "two of four 3 MB buffers fit in 8 MB");
    }
}

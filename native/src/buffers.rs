//! Large I/O buffers kept between files. The allocator maps every block of 256 KiB and more
//! afresh (see `init` in lib.rs), so a new read or frame buffer per file is faulted in page
//! by page, zeroed by the kernel: a first backup of the Linux tree took 140k page faults
//! in the enqueuer's large-file reads alone. Buffers handed back here are reused instead,
//! up to [`KEEP_BYTES`] in all, so a process keeps at most that much for them.

use std::ops::{Deref, DerefMut};
use std::sync::Mutex;

/// Most bytes of free buffers kept.
const KEEP_BYTES: usize = 24 << 20;

static FREE: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

/// A buffer from the pool; it goes back there when dropped.
pub struct Pooled {
    v: Vec<u8>,
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
        give(std::mem::take(&mut self.v));
    }
}

/// A free buffer of at least `capacity` bytes, or a new one.
fn reuse(capacity: usize) -> Option<Vec<u8>> {
    let mut free = FREE.lock().unwrap_or_else(|e| e.into_inner());
    // The smallest that fits, so a large buffer is not spent on a small need.
    let i = (0..free.len())
        .filter(|&i| free[i].capacity() >= capacity)
        .min_by_key(|&i| free[i].capacity())?;
    Some(free.swap_remove(i))
}

fn give(v: Vec<u8>) {
    if v.capacity() == 0 {
        return;
    }
    let mut free = FREE.lock().unwrap_or_else(|e| e.into_inner());
    let kept: usize = free.iter().map(Vec::capacity).sum();
    if kept + v.capacity() <= KEEP_BYTES {
        free.push(v);
    }
}

/// A buffer of exactly `len` bytes whose content is unspecified (zero when new, else what
/// its last user left): for reads into it.
pub fn filled(len: usize) -> Pooled {
    let v = match reuse(len) {
        Some(mut v) => {
            v.resize(len, 0); // no-op when it was this long already; zeroes only growth
            v.truncate(len);
            v
        }
        None => vec![0u8; len],
    };
    Pooled { v }
}

/// An empty buffer with room for `capacity` bytes: for appending to.
pub fn empty(capacity: usize) -> Pooled {
    let v = match reuse(capacity) {
        Some(mut v) => {
            v.clear();
            v
        }
        None => Vec::with_capacity(capacity),
    };
    Pooled { v }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_reused_and_sized_as_asked() {
        let mut a = filled(1 << 20);
        a[0] = 7;
        let addr = a.as_ptr();
        drop(a);
        // Other tests share the pool: look for this buffer among a few takes.
        let taken: Vec<Pooled> = (0..8).map(|_| filled(1 << 20)).collect();
        assert!(taken.iter().all(|b| b.len() == 1 << 20));
        assert!(taken.iter().any(|b| b.as_ptr() == addr));
        drop(taken);
        let e = empty(1000);
        assert!(e.is_empty() && e.capacity() >= 1000);
        let small = filled(10);
        assert_eq!(small.len(), 10);
    }

    #[test]
    fn the_pool_keeps_at_most_its_limit() {
        let big: Vec<Pooled> = (0..8).map(|_| filled(8 << 20)).collect();
        drop(big);
        let kept: usize = FREE.lock().unwrap().iter().map(Vec::capacity).sum();
        assert!(kept <= KEEP_BYTES, "{kept}");
    }
}

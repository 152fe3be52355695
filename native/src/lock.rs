//! Exclusive OS file locks (flock on Unix, LockFileEx on Windows, both through std), which
//! the OS releases when the holder dies. Not re-entrant: a second lock of the same path in
//! the same process opens a new file description and conflicts with the first.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{self, Seek, Write};
use std::path::Path;

/// A held lock; dropping it releases the lock.
pub struct Lock {
    file: Option<File>,
}

impl Lock {
    pub fn release(&mut self) {
        if let Some(f) = self.file.take() {
            let _ = f.unlock();
        }
    }
}

/// Locks `path` (created if missing). `wait` false returns Ok(None) when it is held.
pub fn lock(path: &Path, wait: bool) -> io::Result<Option<Lock>> {
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)?;
    if wait {
        f.lock()?;
    } else {
        match f.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => return Ok(None),
            Err(TryLockError::Error(e)) => return Err(e),
        }
    }
    // The holder's pid, for people looking at the file; the lock itself is the flock.
    let _ = f.set_len(0);
    let _ = f.rewind();
    let _ = writeln!(f, "{}", std::process::id());
    Ok(Some(Lock { file: Some(f) }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exclusive_in_process() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("lock");
        let mut a = lock(&p, false).unwrap().unwrap();
        assert!(lock(&p, false).unwrap().is_none());
        a.release();
        let b = lock(&p, false).unwrap();
        assert!(b.is_some());
        drop(b);
    }
}

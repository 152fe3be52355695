//! Durability barriers: one `syncfs(2)` flushes every file written on a file system, so a
//! server storing hundreds of small blobs pays one barrier, not one fsync per blob.

use std::io;
use std::path::Path;

/// Flushes the file system holding `path` to stable storage. `Ok(false)` where the platform
/// has no such call (the caller then fsyncs file by file).
#[cfg(target_os = "linux")]
pub fn sync_fs(path: &Path) -> io::Result<bool> {
    use std::os::fd::AsRawFd;
    let f = std::fs::File::open(path)?;
    // SAFETY: the descriptor is valid for the call; syncfs only reads it.
    if unsafe { libc::syncfs(f.as_raw_fd()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(true)
}

#[cfg(not(target_os = "linux"))]
pub fn sync_fs(path: &Path) -> io::Result<bool> {
    std::fs::metadata(path)?;
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syncs_a_directory_and_refuses_a_missing_one() {
        let dir = std::env::temp_dir();
        let r = sync_fs(&dir).expect("sync");
        assert_eq!(r, cfg!(target_os = "linux"));
        assert!(sync_fs(&dir.join("cncop-no-such-dir-for-syncfs")).is_err());
    }
}

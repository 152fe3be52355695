//! Opening the files being backed up for reading without changing them: `O_NOATIME` on
//! Linux, so a read does not move the file's access time. Each such update dirtied the inode
//! (an ext4 journal write per file on a first backup, and on every run after a fork write
//! changed the ctime). The flag needs the file's owner or CAP_FOWNER; elsewhere the file
//! is opened as usual.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;

/// Opens `path` for reading, with `extra` open flags (such as `O_NOFOLLOW`), without touching
/// its access time where the system allows it.
pub fn open_with(path: &Path, extra: i32) -> io::Result<File> {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::fs::OpenOptionsExt;
        let open = |flags: i32| OpenOptions::new().read(true).custom_flags(flags).open(path);
        match open(extra | libc::O_NOATIME) {
            // Not the owner, without CAP_FOWNER: the access time is not ours to keep.
            Err(e) if e.raw_os_error() == Some(libc::EPERM) => open(extra),
            r => r,
        }
    }
    #[cfg(all(unix, not(target_os = "linux")))]
    {
        use std::os::unix::fs::OpenOptionsExt;
        OpenOptions::new().read(true).custom_flags(extra).open(path)
    }
    #[cfg(not(unix))]
    {
        let _ = extra;
        File::open(path)
    }
}

/// Opens `path` for reading without touching its access time where allowed.
pub fn open(path: &Path) -> io::Result<File> {
    open_with(path, 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[cfg(target_os = "linux")]
    #[test]
    fn a_read_leaves_the_access_time_alone() {
        use std::os::unix::fs::MetadataExt;
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("f");
        std::fs::write(&p, "content").unwrap();
        // An access time well before the mtime: any read through a plain open (relatime
        // included) would move it.
        let old = libc::timespec {
            tv_sec: 1_000_000_000,
            tv_nsec: 0,
        };
        let times = [
            old,
            libc::timespec {
                tv_sec: 0,
                tv_nsec: libc::UTIME_OMIT,
            },
        ];
        let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path and two timespecs.
        assert_eq!(unsafe { libc::utimensat(libc::AT_FDCWD, c.as_ptr(), times.as_ptr(), 0) }, 0);
        let mut s = String::new();
        open(&p).unwrap().read_to_string(&mut s).unwrap();
        assert_eq!(s, "content");
        assert_eq!(std::fs::metadata(&p).unwrap().atime(), 1_000_000_000);
    }

    #[test]
    fn missing_files_fail_as_usual() {
        let e = open(Path::new("/nonexistent/cncop")).err().unwrap();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
    }
}

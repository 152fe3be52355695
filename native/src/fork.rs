//! Named forks: small attributes attached to a file (user xattrs on Linux and macOS,
//! alternate data streams on NTFS), written without changing the file's mtime.

use std::io;
use std::path::Path;

/// Fork names are kept portable: ASCII letters, digits, `.`, `_`, `-`, 1 to 200 bytes.
pub fn check_name(name: &str) -> io::Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 200
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("fork: bad name {name:?} (use letters, digits, '.', '_', '-')"),
        ))
    }
}

#[cfg(unix)]
mod imp {
    // Through the `xattr` crate: its path functions act on a symbolic link itself, not on
    // its target (lgetxattr and friends), as forks must (decisions/0053).
    use std::fs::File;
    use std::io;
    use std::path::Path;
    use xattr::FileExt;

    fn attr(name: &str) -> String {
        // Linux needs a namespace; macOS has none.
        #[cfg(target_os = "macos")]
        return name.to_string();
        #[cfg(not(target_os = "macos"))]
        return format!("user.{name}");
    }

    pub fn read(path: &Path, name: &str) -> io::Result<Option<Vec<u8>>> {
        xattr::get(path, attr(name))
    }

    pub fn write(path: &Path, name: &str, value: &[u8]) -> io::Result<()> {
        xattr::set(path, attr(name), value)
    }

    /// By the open file's descriptor: no path lookup.
    pub fn write_open(file: &File, _path: &Path, name: &str, value: &[u8]) -> io::Result<()> {
        file.set_xattr(attr(name), value)
    }

    pub fn remove(path: &Path, name: &str) -> io::Result<()> {
        #[cfg(target_os = "macos")]
        const ENOATTR: i32 = libc::ENOATTR;
        #[cfg(not(target_os = "macos"))]
        const ENOATTR: i32 = libc::ENODATA;
        match xattr::remove(path, attr(name)) {
            Err(e) if e.raw_os_error() == Some(ENOATTR) => Ok(()),
            r => r,
        }
    }
}

#[cfg(windows)]
mod imp {
    // NTFS alternate data streams through std: "file:name" opens the stream. Writing a
    // stream updates the file's last-write time, so it is put back afterwards.
    use std::fs::{self, OpenOptions};
    use std::io;
    use std::path::{Path, PathBuf};

    fn stream(path: &Path, name: &str) -> PathBuf {
        let mut s = path.as_os_str().to_os_string();
        s.push(":");
        s.push(name);
        PathBuf::from(s)
    }

    pub fn read(path: &Path, name: &str) -> io::Result<Option<Vec<u8>>> {
        match fs::read(stream(path, name)) {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::metadata(path)?;
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    fn keep_mtime(path: &Path, f: impl FnOnce() -> io::Result<()>) -> io::Result<()> {
        let mtime = fs::metadata(path)?.modified()?;
        f()?;
        OpenOptions::new()
            .write(true)
            .open(path)?
            .set_modified(mtime)
    }

    pub fn write(path: &Path, name: &str, value: &[u8]) -> io::Result<()> {
        keep_mtime(path, || fs::write(stream(path, name), value))
    }

    pub fn write_open(_file: &fs::File, path: &Path, name: &str, value: &[u8]) -> io::Result<()> {
        write(path, name, value)
    }

    pub fn remove(path: &Path, name: &str) -> io::Result<()> {
        keep_mtime(path, || match fs::remove_file(stream(path, name)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        })
    }
}

/// Reads fork `name` of `path`; None when absent.
pub fn read(path: &Path, name: &str) -> io::Result<Option<Vec<u8>>> {
    check_name(name)?;
    imp::read(path, name)
}

/// Writes fork `name` of `path`, leaving the file's mtime alone.
pub fn write(path: &Path, name: &str, value: &[u8]) -> io::Result<()> {
    check_name(name)?;
    imp::write(path, name, value)
}

/// Writes fork `name` of `file`, open at `path` (by its descriptor where the system can).
pub fn write_open(file: &std::fs::File, path: &Path, name: &str, value: &[u8]) -> io::Result<()> {
    check_name(name)?;
    imp::write_open(file, path, name, value)
}

/// The backup state kept in a fork: version byte 1, the BLAKE3 (32 bytes), the size (u64)
/// and the mtime in ns (i64), little-endian; the same 49 bytes as `encodeForkState` in
/// src/ccs/file_state.ts.
pub fn encode_state(blake3: &[u8; 32], size: u64, mtime_ns: i64) -> [u8; 49] {
    let mut b = [0u8; 49];
    b[0] = 1;
    b[1..33].copy_from_slice(blake3);
    b[33..41].copy_from_slice(&size.to_le_bytes());
    b[41..49].copy_from_slice(&mtime_ns.to_le_bytes());
    b
}

/// Removes fork `name` of `path`; no error when absent.
pub fn remove(path: &Path, name: &str) -> io::Result<()> {
    check_name(name)?;
    imp::remove(path, name)
}

/// Whether the filesystem holding `dir` takes forks: probed with a scratch file.
pub fn supported(dir: &Path) -> bool {
    let probe = dir.join(format!(".cncop-fork-probe-{}", std::process::id()));
    if std::fs::write(&probe, b"").is_err() {
        return false;
    }
    let ok = write(&probe, "cncop.probe", b"1").is_ok()
        && read(&probe, "cncop.probe").ok().flatten().as_deref() == Some(b"1".as_slice());
    let _ = std::fs::remove_file(&probe);
    ok
}

//! Reads, hashes and compresses many small files at once on the rayon pool: the enqueuer's
//! pack phase for files that share a pack, off the JS thread and on every core.

use std::cell::RefCell;
use std::fs::{File, Metadata};
use std::io::{self, Read};
use std::path::Path;

use rayon::prelude::*;

/// One file read for a pack entry.
pub struct ReadFile {
    /// The zstd frame when it is smaller than the content, else the content.
    pub data: Vec<u8>,
    /// Bytes of `data` (kept when the caller moves `data` elsewhere).
    pub length: usize,
    pub compressed: bool,
    /// BLAKE3 hex of the content.
    pub blake3: String,
    /// Size and mtime (ns since the epoch) of the open file after reading.
    pub size: u64,
    pub mtime_ns: i64,
    /// The file's backup state went into its fork (see [`ForkWrite`]).
    pub forked: bool,
    /// "" when read; else `ENOENT: ...` or another error code and text.
    pub error: String,
}

/// Asks the batch to keep each file's state in its fork `name` when the file still has the
/// size and mtime (`mtimes_ns[i]`) it was listed with: written by descriptor while the file
/// is open, on the pool, instead of by path on the caller's thread afterwards.
pub struct ForkWrite<'a> {
    pub name: &'a str,
    pub mtimes_ns: &'a [i64],
}

/// A file's mtime in ns since the epoch.
pub(crate) fn mtime_ns(m: &Metadata) -> i64 {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        m.mtime() * 1_000_000_000 + m.mtime_nsec()
    }
    #[cfg(not(unix))]
    {
        m.modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_nanos() as i64)
            .unwrap_or(0)
    }
}

thread_local! {
    /// Each pool thread reads into one buffer it keeps: a new one per file cost a first
    /// backup a page fault per 4 KiB read (fresh pages, zeroed twice) and a fresh mapping
    /// for every file above the allocator's mmap threshold.
    static CONTENT: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Reads the whole file into `buf`: `expected` bytes, and what follows if it grew; returns
/// the length read. Not `read_to_end`: std's asks the file system for the size and position
/// again first, two more system calls per small file of a first backup. `buf` is only
/// zeroed where it grows.
fn read_all(f: &mut File, expected: usize, buf: &mut Vec<u8>) -> io::Result<usize> {
    if buf.len() < expected {
        buf.resize(expected, 0);
    }
    let mut filled = 0;
    while filled < expected {
        match f.read(&mut buf[filled..expected]) {
            Ok(0) => return Ok(filled), // shrank meanwhile: the caller sees the new size
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    loop {
        if buf.len() < filled + 8192 {
            buf.resize(filled + 8192, 0);
        }
        match f.read(&mut buf[filled..]) {
            Ok(0) => return Ok(filled),
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Opens `path` for reading; `true` with it when `path` is a file of its own, not a symbolic
/// link (whose fork would be the link's: never the target's, which may lie outside the tree).
fn open_own(path: &Path) -> io::Result<(File, bool)> {
    #[cfg(unix)]
    {
        match crate::source::open_with(path, libc::O_NOFOLLOW) {
            Ok(f) => Ok((f, true)),
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
                Ok((crate::source::open(path)?, false))
            }
            Err(e) => Err(e),
        }
    }
    #[cfg(not(unix))]
    {
        let own = !std::fs::symlink_metadata(path)?.file_type().is_symlink();
        Ok((crate::source::open(path)?, own))
    }
}

/// Reads, hashes and compresses one file. `listed` is the size the caller expects (the
/// peek's), which spares a stat before the read; the stat after it tells what was read.
/// `fork`: the fork to keep the state in and the mtime the file was listed with.
fn read_one(
    path: &Path,
    level: i32,
    listed: Option<u64>,
    fork: Option<(&str, i64)>,
) -> io::Result<ReadFile> {
    let (mut f, own) = if fork.is_some() {
        open_own(path)?
    } else {
        (crate::source::open(path)?, false)
    };
    let expected = match listed {
        Some(n) => n,
        None => f.metadata()?.len(),
    };
    // Taken out of the thread's slot, not borrowed from it: hashing a file that grew past
    // 1 MiB runs on the pool, and a thread waiting there may start another read.
    let mut buf = CONTENT.with(|c| std::mem::take(&mut *c.borrow_mut()));
    let n = read_all(&mut f, expected as usize, &mut buf)?;
    // The size and mtime after the read: the caller compares them with what the peek
    // listed, so a file written to meanwhile is not sent with a mixed content.
    let m = f.metadata()?;
    let content = &buf[..n];
    let hash = crate::hash::blake3_of(content);
    // Only a state that holds: the whole file, unchanged since it was listed (the listing's
    // stat came before this read, the one above after it).
    let forked = match fork {
        Some((name, listed_mtime))
            if own
                && n as u64 == m.len()
                && listed == Some(m.len())
                && mtime_ns(&m) == listed_mtime =>
        {
            let state = crate::fork::encode_state(hash.as_bytes(), m.len(), listed_mtime);
            crate::fork::write_open(&f, path, name, &state).is_ok()
        }
        _ => false,
    };
    let blake3 = hash.to_hex().to_string();
    let frame = crate::compress::compress(content, level)?;
    let (data, compressed) = if !content.is_empty() && frame.len() < content.len() {
        (frame, true)
    } else {
        (content.to_vec(), false)
    };
    // A rare huge file's buffer is not kept for the rest of the run.
    if buf.len() <= KEEP_BUFFER {
        CONTENT.with(|c| *c.borrow_mut() = buf);
    }
    Ok(ReadFile {
        length: data.len(),
        data,
        compressed,
        blake3,
        size: m.len(),
        mtime_ns: mtime_ns(&m),
        forked,
        error: String::new(),
    })
}

/// Largest read buffer a pool thread keeps between files (small files are under 1 MiB).
const KEEP_BUFFER: usize = 2 * 1024 * 1024;

fn error_code(e: &io::Error) -> &'static str {
    match e.kind() {
        io::ErrorKind::NotFound => "ENOENT",
        io::ErrorKind::PermissionDenied => "EACCES",
        _ => "EIO",
    }
}

/// Reads, hashes and compresses each file, in parallel; errors are per file.
/// `sizes`, when given, holds the size each file is expected to have; `fork` (which needs
/// `sizes`) keeps the state of each file that still has its listed size and mtime.
pub fn read_many(
    paths: &[String],
    level: i32,
    sizes: Option<&[f64]>,
    fork: Option<&ForkWrite>,
) -> Vec<ReadFile> {
    paths
        .par_iter()
        .enumerate()
        .map(|(i, p)| {
            let listed = sizes.and_then(|s| s.get(i)).map(|&n| n as u64);
            let fork = fork.and_then(|w| w.mtimes_ns.get(i).map(|&m| (w.name, m)));
            read_one(Path::new(p), level, listed, fork).unwrap_or_else(|e| ReadFile {
                data: Vec::new(),
                length: 0,
                compressed: false,
                blake3: String::new(),
                size: 0,
                mtime_ns: 0,
                forked: false,
                error: format!("{}: {e}", error_code(&e)),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_hashes_compresses_and_reports_errors_per_file() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let text = dir.join("text");
        std::fs::write(&text, "abc".repeat(1000)).unwrap();
        let empty = dir.join("empty");
        std::fs::write(&empty, "").unwrap();
        let paths: Vec<String> = [&text, &empty, &dir.join("missing")]
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        let r = read_many(&paths, 3, None, None);
        assert!(r[0].compressed && r[0].data.len() < 3000 && r[0].size == 3000);
        assert_eq!(
            r[0].blake3,
            crate::hash::blake3_hex("abc".repeat(1000).as_bytes())
        );
        assert_eq!(
            crate::compress::decompress(&r[0].data, 3000, 23)
                .unwrap()
                .len(),
            3000
        );
        assert!(!r[1].compressed && r[1].data.is_empty() && r[1].error.is_empty());
        assert!(r[2].error.starts_with("ENOENT"));
        // A file longer or shorter than first thought is read as it is.
        let mut buf = Vec::new();
        let mut f = File::open(&text).unwrap();
        let n = read_all(&mut f, 10, &mut buf).unwrap();
        assert_eq!(&buf[..n], "abc".repeat(1000).as_bytes());
        let mut f = File::open(&text).unwrap();
        assert_eq!(read_all(&mut f, 5000, &mut buf).unwrap(), 3000);
        // Listed sizes spare a stat; a wrong one still reads the file as it is, and the
        // size after the read tells the caller.
        let r = read_many(&paths[..1], 3, Some(&[10.0]), None);
        assert_eq!(r[0].size, 3000);
        assert_eq!(
            r[0].blake3,
            crate::hash::blake3_hex("abc".repeat(1000).as_bytes())
        );
        // Files that grew past 1 MiB since they were listed are read whole (and hashed on
        // the pool itself, whose threads may run another read while they wait).
        let big: Vec<u8> = (0..1_500_000u32).map(|i| (i % 253) as u8).collect();
        let many: Vec<String> = (0..32)
            .map(|i| {
                let p = dir.join(format!("big{i}"));
                std::fs::write(&p, &big).unwrap();
                p.to_string_lossy().into_owned()
            })
            .collect();
        let listed = vec![10.0; many.len()];
        for r in read_many(&many, 1, Some(&listed), None) {
            assert_eq!((r.error.as_str(), r.size), ("", big.len() as u64));
            assert_eq!(r.blake3, crate::hash::blake3_hex(&big));
        }
        // The thread's buffer, reused after a longer file, holds no stale bytes.
        let short = dir.join("short");
        std::fs::write(&short, "xyz").unwrap();
        let long = read_one(&text, 3, None, None).unwrap();
        let r = read_one(&short, 3, Some(3), None).unwrap();
        assert!(long.compressed && !r.compressed);
        assert_eq!(r.data, b"xyz");
        assert_eq!(r.blake3, crate::hash::blake3_hex(b"xyz"));
    }

    #[cfg(unix)]
    #[test]
    fn keeps_the_state_in_the_fork_of_files_unchanged_since_listed() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        if !crate::fork::supported(dir) {
            return; // a file system without user xattrs: nothing to check here
        }
        let names = ["same", "touched", "link"];
        std::fs::write(dir.join("same"), "same content").unwrap();
        std::fs::write(dir.join("touched"), "touched").unwrap();
        std::fs::write(dir.join("target"), "target").unwrap();
        std::os::unix::fs::symlink(dir.join("target"), dir.join("link")).unwrap();
        let paths: Vec<String> = names
            .iter()
            .map(|n| dir.join(n).to_string_lossy().into_owned())
            .collect();
        let meta: Vec<Metadata> = paths
            .iter()
            .map(|p| std::fs::metadata(p).unwrap())
            .collect();
        let sizes: Vec<f64> = meta.iter().map(|m| m.len() as f64).collect();
        let mut mtimes: Vec<i64> = meta.iter().map(mtime_ns).collect();
        mtimes[1] -= 1; // listed before a write the read then sees
        let w = ForkWrite {
            name: "cncop.test",
            mtimes_ns: &mtimes,
        };
        let r = read_many(&paths, 1, Some(&sizes), Some(&w));
        assert_eq!(
            r.iter().map(|f| f.forked).collect::<Vec<_>>(),
            [true, false, false]
        );
        let state = crate::fork::read(Path::new(&paths[0]), "cncop.test")
            .unwrap()
            .unwrap();
        let hash = crate::hash::blake3_of(b"same content");
        assert_eq!(
            state,
            crate::fork::encode_state(hash.as_bytes(), 12, mtimes[0])
        );
        assert_eq!(r[0].blake3, hash.to_hex().to_string());
        // Neither the file written to since it was listed nor the link's target got one,
        // and the fork did not move the mtime.
        for other in [dir.join("touched"), dir.join("target")] {
            assert!(crate::fork::read(&other, "cncop.test").unwrap().is_none());
        }
        assert_eq!(mtime_ns(&std::fs::metadata(&paths[0]).unwrap()), mtimes[0]);
    }
}

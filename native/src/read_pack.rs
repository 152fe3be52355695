//! Reads, hashes and compresses many small files at once on the rayon pool: the enqueuer's
//! pack phase for files that share a pack, off the JS thread and on every core.

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
    /// "" when read; else `ENOENT: ...` or another error code and text.
    pub error: String,
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

/// Reads the whole file: `expected` bytes, and what follows if it grew. Not
/// `read_to_end`: std's asks the file system for the size and position again first, two
/// more system calls per small file of a first backup.
fn read_all(f: &mut File, expected: usize) -> io::Result<Vec<u8>> {
    let mut content = vec![0u8; expected];
    let mut filled = 0;
    while filled < expected {
        match f.read(&mut content[filled..]) {
            Ok(0) => {
                content.truncate(filled); // shrank meanwhile: the caller sees the new size
                return Ok(content);
            }
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let mut more = [0u8; 8192];
    loop {
        match f.read(&mut more) {
            Ok(0) => return Ok(content),
            Ok(n) => content.extend_from_slice(&more[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

fn read_one(path: &Path, level: i32) -> io::Result<ReadFile> {
    let mut f = File::open(path)?;
    let before = f.metadata()?.len();
    let content = read_all(&mut f, before as usize)?;
    // The size and mtime after the read: the caller compares them with what the peek
    // listed, so a file written to meanwhile is not sent with a mixed content.
    let m = f.metadata()?;
    let blake3 = crate::hash::blake3_hex(&content);
    let frame = crate::compress::compress(&content, level)?;
    let (data, compressed) = if !content.is_empty() && frame.len() < content.len() {
        (frame, true)
    } else {
        (content, false)
    };
    Ok(ReadFile {
        length: data.len(),
        data,
        compressed,
        blake3,
        size: m.len(),
        mtime_ns: mtime_ns(&m),
        error: String::new(),
    })
}

fn error_code(e: &io::Error) -> &'static str {
    match e.kind() {
        io::ErrorKind::NotFound => "ENOENT",
        io::ErrorKind::PermissionDenied => "EACCES",
        _ => "EIO",
    }
}

/// Reads, hashes and compresses each file, in parallel; errors are per file.
pub fn read_many(paths: &[String], level: i32) -> Vec<ReadFile> {
    paths
        .par_iter()
        .map(|p| {
            read_one(Path::new(p), level).unwrap_or_else(|e| ReadFile {
                data: Vec::new(),
                length: 0,
                compressed: false,
                blake3: String::new(),
                size: 0,
                mtime_ns: 0,
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
        let dir = std::env::temp_dir().join(format!("cncop-readpack-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let text = dir.join("text");
        std::fs::write(&text, "abc".repeat(1000)).unwrap();
        let empty = dir.join("empty");
        std::fs::write(&empty, "").unwrap();
        let paths: Vec<String> = [&text, &empty, &dir.join("missing")]
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        let r = read_many(&paths, 3);
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
        let mut f = File::open(&text).unwrap();
        assert_eq!(read_all(&mut f, 10).unwrap(), "abc".repeat(1000).as_bytes());
        let mut f = File::open(&text).unwrap();
        assert_eq!(read_all(&mut f, 5000).unwrap().len(), 3000);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

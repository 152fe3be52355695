//! Whole-content hashes: xxh3-128 (change detection) and BLAKE3-256 (content identity).
//!
//! Files are streamed in large reads rather than memory-mapped: a backup reads live files,
//! and a file truncated under a mapping kills the process with SIGBUS.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;
use std::sync::mpsc;

use xxhash_rust::xxh3::Xxh3;

use crate::buffers::Pooled;

/// Read size for streamed hashing; BLAKE3 hashes each read on all cores when it is this big.
const READ_SIZE: usize = 8 << 20;
/// Below this, multi-threaded BLAKE3 costs more than it saves.
const RAYON_MIN: usize = 1 << 20;

/// xxh3-128 of a buffer, 32 lowercase hex digits (canonical big-endian order).
pub fn xxh3_hex(data: &[u8]) -> String {
    format!("{:032x}", xxhash_rust::xxh3::xxh3_128(data))
}

/// BLAKE3-256 of a buffer.
pub fn blake3_of(data: &[u8]) -> blake3::Hash {
    if data.len() >= RAYON_MIN {
        let mut h = blake3::Hasher::new();
        h.update_rayon(data);
        h.finalize()
    } else {
        blake3::hash(data)
    }
}

/// BLAKE3-256 of a buffer, 64 lowercase hex digits.
pub fn blake3_hex(data: &[u8]) -> String {
    blake3_of(data).to_hex().to_string()
}

/// Fills `buf` from `file` as far as it goes; returns the bytes read (short only at EOF).
fn fill(file: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Calls `f` with successive chunks of the file's content. A reader thread fills the next
/// buffer while `f` works on the current one, so copying out of the page cache overlaps
/// with hashing.
pub fn read_chunks(path: &Path, mut f: impl FnMut(&[u8])) -> io::Result<()> {
    let mut file = crate::source::open(path)?;
    let mut first = crate::buffers::filled(READ_SIZE);
    let n = fill(&mut file, &mut first)?;
    if n < READ_SIZE {
        // Small file: no thread.
        if n > 0 {
            f(&first[..n]);
        }
        return Ok(());
    }
    let (full_tx, full_rx) = mpsc::sync_channel::<io::Result<(Pooled, usize)>>(1);
    let (empty_tx, empty_rx) = mpsc::sync_channel::<Pooled>(2);
    empty_tx
        .send(crate::buffers::filled(READ_SIZE))
        .expect("fresh channel");
    std::thread::scope(|scope| {
        // Owned here so it drops (and the reader stops) however this closure ends.
        let empty_tx = empty_tx;
        scope.spawn(move || {
            while let Ok(mut buf) = empty_rx.recv() {
                let r = fill(&mut file, &mut buf);
                let done = !matches!(r, Ok(n) if n == READ_SIZE);
                if full_tx.send(r.map(|n| (buf, n))).is_err() || done {
                    return;
                }
            }
        });
        f(&first);
        let _ = empty_tx.send(first);
        loop {
            match full_rx.recv() {
                Ok(Ok((buf, n))) => {
                    if n > 0 {
                        f(&buf[..n]);
                    }
                    if n < READ_SIZE {
                        return Ok(());
                    }
                    let _ = empty_tx.send(buf);
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => return Ok(()),
            }
        }
    })
}

/// xxh3-128 of a file's content.
pub fn xxh3_file(path: &Path) -> io::Result<String> {
    let mut h = Xxh3::new();
    read_chunks(path, |c| h.update(c))?;
    Ok(format!("{:032x}", h.digest128()))
}

/// BLAKE3-256 of a file's content.
pub fn blake3_file(path: &Path) -> io::Result<String> {
    let mut h = blake3::Hasher::new();
    read_chunks(path, |c| {
        if c.len() >= RAYON_MIN {
            h.update_rayon(c);
        } else {
            h.update(c);
        }
    })?;
    Ok(h.finalize().to_hex().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vectors() {
        assert_eq!(
            blake3_hex(b""),
            "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
        );
        assert_eq!(xxh3_hex(b""), "99aa06d3014798d86001c324468d497f");
    }

    #[test]
    fn file_matches_buffer() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let p = dir.join("f");
        for len in [
            0,
            1,
            READ_SIZE - 1,
            READ_SIZE,
            READ_SIZE * 2,
            READ_SIZE * 2 + 12345,
        ] {
            let data: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
            std::fs::write(&p, &data).unwrap();
            assert_eq!(blake3_file(&p).unwrap(), blake3_hex(&data), "{len}");
            assert_eq!(xxh3_file(&p).unwrap(), xxh3_hex(&data), "{len}");
        }
    }
}

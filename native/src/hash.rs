//! Whole-content hashes: xxh3-128 (change detection) and BLAKE3-256 (content identity).
//!
//! Files are streamed in large reads rather than memory-mapped: a backup reads live files,
//! and a file truncated under a mapping kills the process with SIGBUS.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use xxhash_rust::xxh3::Xxh3;

/// Read size for streamed hashing; BLAKE3 hashes each read on all cores when it is this big.
const READ_SIZE: usize = 8 << 20;
/// Below this, multi-threaded BLAKE3 costs more than it saves.
const RAYON_MIN: usize = 1 << 20;

/// xxh3-128 of a buffer, 32 lowercase hex digits (canonical big-endian order).
pub fn xxh3_hex(data: &[u8]) -> String {
    format!("{:032x}", xxhash_rust::xxh3::xxh3_128(data))
}

/// BLAKE3-256 of a buffer, 64 lowercase hex digits.
pub fn blake3_hex(data: &[u8]) -> String {
    if data.len() >= RAYON_MIN {
        let mut h = blake3::Hasher::new();
        h.update_rayon(data);
        h.finalize().to_hex().to_string()
    } else {
        blake3::hash(data).to_hex().to_string()
    }
}

/// Calls `f` with successive chunks of the file's content.
pub fn read_chunks(path: &Path, mut f: impl FnMut(&[u8])) -> io::Result<()> {
    let mut file = File::open(path)?;
    let mut buf = vec![0u8; READ_SIZE];
    loop {
        // Fill the buffer completely so BLAKE3 sees big slices.
        let mut filled = 0;
        while filled < buf.len() {
            match file.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if filled == 0 {
            return Ok(());
        }
        f(&buf[..filled]);
        if filled < buf.len() {
            return Ok(());
        }
    }
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
        let dir = std::env::temp_dir().join(format!("cncop-hash-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("f");
        let data: Vec<u8> = (0..(READ_SIZE * 2 + 12345))
            .map(|i| (i * 7 % 251) as u8)
            .collect();
        std::fs::write(&p, &data).unwrap();
        assert_eq!(blake3_file(&p).unwrap(), blake3_hex(&data));
        assert_eq!(xxh3_file(&p).unwrap(), xxh3_hex(&data));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

//! zstd for small pack entries, with one compression and one decompression context kept per
//! thread: building a context costs more than compressing a 6 KB source file, and a pack
//! holds thousands of them. Large bodies go through `pack_file.rs` and `inflate.rs`.

use std::cell::RefCell;
use std::io;

use rayon::prelude::*;

use zstd::bulk::{Compressor, Decompressor};
use zstd::zstd_safe::DParameter;

thread_local! {
    static COMPRESSOR: RefCell<Option<Compressor<'static>>> = const { RefCell::new(None) };
    static DECOMPRESSOR: RefCell<Option<Decompressor<'static>>> = const { RefCell::new(None) };
}

/// One zstd frame of `data` at `level` (1..=22).
pub fn compress(data: &[u8], level: i32) -> io::Result<Vec<u8>> {
    COMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = Some(Compressor::new(level)?);
        }
        let c = slot.as_mut().expect("set above");
        c.set_compression_level(level)?;
        c.compress(data)
    })
}

/// Decompresses `data` (one or more zstd frames) into at most `max` bytes; an output that
/// would be larger, a window above 2^`window_log_max` or corrupt input is an error.
pub fn decompress(data: &[u8], max: usize, window_log_max: u32) -> io::Result<Vec<u8>> {
    DECOMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = Some(Decompressor::new()?);
        }
        let d = slot.as_mut().expect("set above");
        d.set_parameter(DParameter::WindowLogMax(window_log_max))?;
        d.decompress(data, max)
    })
}

/// One body to verify: its frame as stored (borrowed: the network's frames are JS memory,
/// read in place), whether zstd, the size and BLAKE3 it must have.
pub struct FrameCheck<'a> {
    pub frame: &'a [u8],
    pub zstd: bool,
    pub size: usize,
    pub blake3: &'a str,
}

/// Checks each frame in parallel: "" when it decodes to `size` bytes hashing to `blake3`,
/// else what is wrong.
pub fn verify_many(checks: &[FrameCheck<'_>], window_log_max: u32) -> Vec<String> {
    checks
        .par_iter()
        .map(|c| {
            let owned;
            let body: &[u8] = if c.zstd {
                match decompress(c.frame, c.size, window_log_max) {
                    Ok(b) => {
                        owned = b;
                        &owned
                    }
                    Err(e) => {
                        return format!(
                            "body is corrupt or larger than its declared {} bytes: {e}",
                            c.size
                        )
                    }
                }
            } else {
                c.frame
            };
            if body.len() != c.size {
                return format!(
                    "body is {} bytes, its header declares {}",
                    body.len(),
                    c.size
                );
            }
            if crate::hash::blake3_hex(body) != c.blake3 {
                return "content does not match its header's hash".to_string();
            }
            String::new()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn many_at_once_in_parallel() {
        let bodies: Vec<Vec<u8>> = (0..50u8).map(|i| vec![i; 1000 + i as usize]).collect();
        let frames: Vec<Vec<u8>> = bodies.iter().map(|b| compress(b, 3).unwrap()).collect();
        let hashes: Vec<String> = bodies.iter().map(|b| crate::hash::blake3_hex(b)).collect();
        let raw_hash = crate::hash::blake3_hex(b"raw");
        let mut checks: Vec<FrameCheck> = frames
            .iter()
            .zip(&bodies)
            .zip(&hashes)
            .map(|((f, b), h)| FrameCheck {
                frame: f,
                zstd: true,
                size: b.len(),
                blake3: h,
            })
            .collect();
        checks.push(FrameCheck {
            frame: b"raw",
            zstd: false,
            size: 3,
            blake3: &raw_hash,
        });
        checks.push(FrameCheck {
            frame: &frames[0],
            zstd: true,
            size: 10,
            blake3: "",
        });
        checks.push(FrameCheck {
            frame: &frames[1],
            zstd: true,
            size: bodies[1].len(),
            blake3: "00",
        });
        let r = verify_many(&checks, 23);
        assert!(r[..51].iter().all(String::is_empty), "{r:?}");
        assert!(r[51].contains("larger than its declared 10"));
        assert!(r[52].contains("hash"));
    }

    #[test]
    fn round_trips_and_bounds_the_output() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let z = compress(&data, 3).unwrap();
        assert!(z.len() < data.len() / 10);
        assert_eq!(decompress(&z, data.len(), 23).unwrap(), data);
        assert!(decompress(&z, data.len() - 1, 23).is_err());
        assert!(decompress(&z[..z.len() / 2], data.len(), 23).is_err());
        assert_eq!(decompress(&compress(b"", 1).unwrap(), 0, 23).unwrap(), b"");
    }
}

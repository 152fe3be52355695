//! zstd for small pack entries, with one compression and one decompression context kept per
//! thread: building a context costs more than compressing a 6 KB source file, and a pack
//! holds thousands of them. Large bodies stream through the runtime's zstd instead.

use std::cell::RefCell;
use std::io;

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

#[cfg(test)]
mod tests {
    use super::*;

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

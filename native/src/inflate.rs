//! The network's side of a large pack body: its frames, as they are read, decompressed
//! (one zstd stream across them, or raw bytes), hashed (BLAKE3) and written to a body
//! file, in one pass. The reader used to stream them through the runtime's zstd and
//! JavaScript, then read the body file again to hash it.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::Path;

use zstd::stream::raw::{Decoder, InBuffer, Operation, OutBuffer};
use zstd::zstd_safe::DParameter;

const OUT_CHUNK: usize = 1 << 20;

/// The error of a body that is not what its header declares: its message starts with
/// `EPACK` (corrupt, or larger than declared).
fn bad(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("EPACK: {what}"))
}

/// A body being written.
pub struct Inflater {
    /// None: the body is only checked, not kept.
    out: Option<BufWriter<File>>,
    dec: Option<Decoder<'static>>,
    hasher: blake3::Hasher,
    produced: u64,
    max: u64,
    buf: Vec<u8>,
    /// The decoder's last hint: 0 once a zstd frame ended (the stream may end there).
    hint: usize,
}

impl Inflater {
    /// Creates the body file `path` (0600; none: the body is only checked) for at most
    /// `max` bytes; `zstd` decodes with a window of at most 2^`window_log_max`.
    pub fn create(
        path: Option<&Path>,
        zstd: bool,
        max: u64,
        window_log_max: u32,
    ) -> io::Result<Self> {
        let out = match path {
            None => None,
            Some(path) => {
                let mut o = OpenOptions::new();
                o.write(true).create(true).truncate(true);
                #[cfg(unix)]
                {
                    use std::os::unix::fs::OpenOptionsExt;
                    o.mode(0o600);
                }
                Some(BufWriter::with_capacity(OUT_CHUNK, o.open(path)?))
            }
        };
        let dec = if zstd {
            let mut d = Decoder::new()?;
            d.set_parameter(DParameter::WindowLogMax(window_log_max))?;
            Some(d)
        } else {
            None
        };
        Ok(Inflater {
            out,
            dec,
            hasher: blake3::Hasher::new(),
            produced: 0,
            max,
            buf: if zstd { vec![0u8; OUT_CHUNK] } else { Vec::new() },
            hint: 0,
        })
    }

    fn put(&mut self, data: &[u8]) -> io::Result<()> {
        self.produced += data.len() as u64;
        if self.produced > self.max {
            return Err(bad(format!(
                "body expands beyond its declared {} bytes",
                self.max
            )));
        }
        if data.len() >= 1 << 20 {
            self.hasher.update_rayon(data);
        } else {
            self.hasher.update(data);
        }
        match self.out.as_mut() {
            Some(w) => w.write_all(data),
            None => Ok(()),
        }
    }

    /// Adds the next frame.
    pub fn write(&mut self, frame: &[u8]) -> io::Result<()> {
        let Some(mut dec) = self.dec.take() else {
            return self.put(frame);
        };
        let mut buf = std::mem::take(&mut self.buf);
        let res = (|| {
            let mut input = InBuffer::around(frame);
            loop {
                let mut output = OutBuffer::around(&mut buf[..]);
                let hint = dec
                    .run(&mut input, &mut output)
                    .map_err(|e| bad(format!("body is corrupt: {e}")))?;
                let n = output.pos();
                self.hint = hint;
                if n > 0 {
                    self.put(&buf[..n])?;
                }
                if input.pos() == frame.len() && n < buf.len() {
                    return Ok(());
                }
            }
        })();
        self.buf = buf;
        self.dec = Some(dec);
        res
    }

    /// Ends the body: its file flushed (not fsynced) and closed. Returns its BLAKE3 hex and size.
    pub fn finish(self) -> io::Result<(String, u64)> {
        if self.dec.is_some() && self.hint != 0 {
            return Err(bad("body is corrupt: its zstd stream is cut short".into()));
        }
        if let Some(mut out) = self.out {
            out.flush()?;
            drop(out.into_inner().map_err(|e| e.into_error())?);
        }
        Ok((self.hasher.finalize().to_hex().to_string(), self.produced))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_of_one_stream_decode_to_the_body_and_its_hash() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let body: Vec<u8> = (0..5_000_000u32).map(|i| (i / 7 % 256) as u8).collect();
        let z = zstd::stream::encode_all(&body[..], 3).unwrap();
        let out = dir.join("body");
        let mut inf = Inflater::create(Some(&out), true, body.len() as u64, 23).unwrap();
        for part in z.chunks(1000) {
            inf.write(part).unwrap();
        }
        let (hash, size) = inf.finish().unwrap();
        assert_eq!(size, body.len() as u64);
        assert_eq!(hash, crate::hash::blake3_hex(&body));
        assert_eq!(std::fs::read(&out).unwrap(), body);

        // A bomb stops at the declared size; a cut stream is corrupt; raw bodies pass.
        let mut small = Inflater::create(Some(&out), true, 1000, 23).unwrap();
        let e = small.write(&z).err().unwrap();
        assert!(e.to_string().contains("expands beyond its declared 1000"), "{e}");
        let mut cut = Inflater::create(Some(&out), true, body.len() as u64, 23).unwrap();
        cut.write(&z[..z.len() / 2]).unwrap();
        assert!(cut.finish().err().unwrap().to_string().contains("cut short"));
        let mut check = Inflater::create(None, true, body.len() as u64, 23).unwrap();
        check.write(&z).unwrap();
        assert_eq!(check.finish().unwrap().0, hash, "checked without a body file");
        let mut raw = Inflater::create(Some(&out), false, 6, 23).unwrap();
        raw.write(b"abc").unwrap();
        raw.write(b"def").unwrap();
        assert_eq!(raw.finish().unwrap().1, 6);
        assert_eq!(std::fs::read(&out).unwrap(), b"abcdef");
    }
}

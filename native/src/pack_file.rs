//! A one-entry pack of a large file (docs/formats/pack.md) written in one read of the file:
//! BLAKE3, zstd body frames and, when asked, the file's block signature, all from the same
//! bytes. The caller gives the bytes before the body (magic, header length, header) with a
//! 64-digit placeholder where the header's hash goes, and the bytes after it (the end
//! frame, the end of the entries); the hash is written into the placeholder once known,
//! then the SHA-256 trailer is taken over the finished file. The pack is written to `out`
//! and fsynced; renaming it into place is the caller's.
//!
//! Before, the enqueuer read such a file four times (hash, signature, compress, hash again)
//! and streamed it through JavaScript.

use std::fs::{self, File, Metadata, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::buffers::Pooled;
use crate::delta::SigWriter;
use crate::hash::read_chunks;
use crate::read_pack::mtime_ns;

/// A body frame is flushed once this many compressed bytes wait (the format allows 4 MiB).
const FRAME_BYTES: usize = 1 << 20;
const HASH_HEX: usize = 64;

/// What [`write_file_pack`] needs.
pub struct FilePack<'a> {
    pub source: &'a Path,
    pub out: &'a Path,
    /// Magic, header length and header, with [`HASH_HEX`] placeholder bytes at `hash_at`
    /// (none: the header's hash is not the body's, as for a delta).
    pub prefix: &'a [u8],
    pub hash_at: Option<usize>,
    /// What follows the body frames.
    pub suffix: &'a [u8],
    /// zstd level; 0 writes the body raw.
    pub level: i32,
    /// The size and mtime (ns) the file must have, before and after the read.
    pub size: u64,
    pub mtime_ns: i64,
    /// Where to write the content's block signature, if wanted.
    pub sig: Option<&'a Path>,
}

/// What was written.
pub struct FilePackWritten {
    pub bytes: u64,
    pub sha256: String,
    pub blake3: String,
}

/// The error of a file that is not, or no longer, what the caller listed: its message
/// starts with `ECHANGED`.
fn changed(what: String) -> io::Error {
    io::Error::other(format!("ECHANGED: {what}"))
}

/// Body frames: u32 big-endian length + bytes, written to the pack as they fill.
struct Frames<W: Write> {
    w: W,
    buf: Pooled,
}

impl<W: Write> Frames<W> {
    fn emit(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        self.w.write_all(&(self.buf.len() as u32).to_be_bytes())?;
        self.w.write_all(&self.buf)?;
        self.buf.clear();
        Ok(())
    }
}

impl<W: Write> Write for Frames<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let take = data.len().min(FRAME_BYTES - self.buf.len());
        self.buf.extend_from_slice(&data[..take]);
        if self.buf.len() >= FRAME_BYTES {
            self.emit()?;
        }
        Ok(take)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Where the file's bytes go: through zstd into the frames, or into them as they are.
enum Body<W: Write> {
    Zstd(zstd::stream::write::Encoder<'static, Frames<W>>),
    Raw(Frames<W>),
}

impl<W: Write> Body<W> {
    fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        match self {
            Body::Zstd(z) => z.write_all(data),
            Body::Raw(f) => f.write_all(data),
        }
    }
    fn finish(self) -> io::Result<Frames<W>> {
        match self {
            Body::Zstd(z) => z.finish(),
            Body::Raw(f) => Ok(f),
        }
    }
}

fn check_same(p: &FilePack, m: &Metadata, when: &str) -> io::Result<()> {
    if m.len() != p.size || mtime_ns(m) != p.mtime_ns {
        return Err(changed(format!(
            "{} changed {when} it was packed",
            p.source.display()
        )));
    }
    Ok(())
}

/// Writes the pack; the file must keep the listed size and mtime throughout.
pub fn write_file_pack(p: &FilePack) -> io::Result<FilePackWritten> {
    if p.hash_at.is_some_and(|at| at + HASH_HEX > p.prefix.len()) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "pack: the hash placeholder lies outside the header",
        ));
    }
    check_same(p, &fs::metadata(p.source)?, "before")?;
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(p.out)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(fs::Permissions::from_mode(0o600))?;
    }
    let res = write_into(p, file);
    if res.is_err() {
        let _ = fs::remove_file(p.out);
    }
    res
}

fn write_into(p: &FilePack, file: File) -> io::Result<FilePackWritten> {
    // Unbuffered: the frames are a megabyte each, written with their length.
    let mut w = file;
    w.write_all(p.prefix)?;
    let frames = Frames {
        w,
        buf: crate::buffers::empty(FRAME_BYTES),
    };
    let mut sig = match p.sig {
        Some(s) => Some(SigWriter::create(
            s,
            p.size,
            0,
            &p.source.display().to_string(),
        )?),
        None => None,
    };
    let mut hasher = blake3::Hasher::new();
    let mut read: u64 = 0;
    let mut failed: Option<io::Error> = None;
    let mut body = if p.level > 0 {
        Body::Zstd(zstd::stream::write::Encoder::new(frames, p.level)?)
    } else {
        Body::Raw(frames)
    };
    let read_all = read_chunks(p.source, |c| {
        if failed.is_some() {
            return;
        }
        read += c.len() as u64;
        if read > p.size {
            failed = Some(changed(format!("{} grew while it was packed", p.source.display())));
            return;
        }
        hasher.update_rayon(c);
        if let Some(s) = sig.as_mut() {
            failed = s.update(c).err();
        }
        if failed.is_none() {
            failed = body.write_all(c).err();
        }
    });
    let body = read_all
        .and_then(|()| failed.take().map_or(Ok(()), Err))
        .and_then(|()| body.finish());
    let after = body.and_then(|frames| {
        if read != p.size {
            return Err(changed(format!(
                "{} is {read} bytes now, {} when it was listed",
                p.source.display(),
                p.size
            )));
        }
        check_same(p, &fs::metadata(p.source)?, "while")?;
        Ok(frames)
    });
    let mut frames = match after {
        Ok(f) => f,
        Err(e) => {
            if let Some(s) = sig {
                s.abort();
            }
            return Err(e);
        }
    };
    frames.emit()?;
    let mut w = frames.w;
    w.write_all(p.suffix)?;
    let mut file = w;
    let blake3 = hasher.finalize().to_hex().to_string();
    if let Some(at) = p.hash_at {
        file.seek(SeekFrom::Start(at as u64))?;
        file.write_all(blake3.as_bytes())?;
    }
    // The trailer covers the finished bytes: read back (mostly the compressed body, far
    // smaller than the file), not hashed on the way, since the hash went in afterwards.
    file.seek(SeekFrom::Start(0))?;
    let mut sha = Sha256::new();
    let mut buf = crate::buffers::filled(1 << 20);
    let mut bytes: u64 = 0;
    loop {
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                sha.update(&buf[..n]);
                bytes += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let digest = sha.finalize();
    file.write_all(&digest)?;
    file.sync_all()?;
    if let Some(s) = sig {
        s.finish()?;
    }
    Ok(FilePackWritten {
        bytes: bytes + digest.len() as u64,
        sha256: digest.iter().map(|b| format!("{b:02x}")).collect(),
        blake3,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mtime_of(p: &Path) -> i64 {
        mtime_ns(&fs::metadata(p).unwrap())
    }

    #[test]
    fn one_read_gives_hash_frames_trailer_and_signature() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let src = dir.join("src");
        let content: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        fs::write(&src, &content).unwrap();
        let mut prefix = b"HEAD".to_vec();
        let at = prefix.len();
        prefix.extend_from_slice(&[b'0'; HASH_HEX]);
        prefix.extend_from_slice(b"TAIL");
        let out = dir.join("out.pack");
        let sig = dir.join("out.sig");
        let p = FilePack {
            source: &src,
            out: &out,
            prefix: &prefix,
            hash_at: Some(at),
            suffix: &[0, 0, 0, 0],
            level: 3,
            size: content.len() as u64,
            mtime_ns: mtime_of(&src),
            sig: Some(&sig),
        };
        let w = write_file_pack(&p).unwrap();
        let bytes = fs::read(&out).unwrap();
        assert_eq!(w.bytes as usize, bytes.len());
        assert_eq!(w.blake3, crate::hash::blake3_hex(&content));
        assert_eq!(&bytes[at..at + HASH_HEX], w.blake3.as_bytes());
        let body_end = bytes.len() - 32;
        assert_eq!(
            Sha256::digest(&bytes[..body_end]).as_slice(),
            &bytes[body_end..]
        );
        // Frames, then the suffix.
        let mut pos = prefix.len();
        let mut z = Vec::new();
        while pos < body_end - 4 {
            let len = u32::from_be_bytes(bytes[pos..pos + 4].try_into().unwrap()) as usize;
            assert!(len > 0 && len <= 4 << 20);
            z.extend_from_slice(&bytes[pos + 4..pos + 4 + len]);
            pos += 4 + len;
        }
        assert_eq!(&bytes[pos..body_end], &[0, 0, 0, 0]);
        assert_eq!(zstd::stream::decode_all(&z[..]).unwrap(), content);
        // The signature equals the one written from the file on its own.
        let alone = dir.join("alone.sig");
        crate::delta::signature(&src, &alone, 0).unwrap();
        assert_eq!(fs::read(&sig).unwrap(), fs::read(&alone).unwrap());

        // A file that is not what was listed leaves nothing behind.
        fs::remove_file(&out).unwrap();
        fs::remove_file(&sig).unwrap();
        let wrong = FilePack {
            size: content.len() as u64 + 1,
            ..p
        };
        let e = write_file_pack(&wrong).err().unwrap();
        assert!(e.to_string().starts_with("ECHANGED"), "{e}");
        assert!(!out.exists() && !sig.exists());
    }
}

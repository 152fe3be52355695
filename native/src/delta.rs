//! rsync-style block signatures, deltas and patches. Wire format: docs/formats/delta.md.
//!
//! The portable twin (src/native/portable/delta.ts) must produce byte-identical files, so
//! every choice here (block size, candidate order, COPY merging, DATA cap) is part of the
//! format and is mirrored there.

use std::collections::HashMap;
use std::fs::{self, File};
use std::hash::{BuildHasherDefault, Hasher};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use xxhash_rust::xxh3::xxh3_128;

use crate::hash::read_chunks;

pub const SIG_MAGIC: &[u8; 4] = b"CNSG";
pub const DELTA_MAGIC: &[u8; 4] = b"CNDL";
pub const VERSION: u8 = 1;
pub const STRONG_LEN: usize = 16;
pub const SIG_HEADER_LEN: usize = 20;
pub const DELTA_HEADER_LEN: usize = 20;
/// Largest DATA instruction; longer literal runs are split.
pub const MAX_LITERAL: usize = 1 << 20;
pub const MIN_BLOCK: u32 = 64;
pub const MAX_BLOCK: u32 = 1 << 24;
const OP_END: u8 = 0;
const OP_COPY: u8 = 1;
const OP_DATA: u8 = 2;
const CHAR_OFFSET: u32 = 31;

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// Block size for a base of `size` bytes: fine blocks (the signature is cached locally),
/// the smallest power of two from 128 B to 64 KiB that is at least sqrt(size) / 24.
pub fn choose_block_size(size: u64) -> u32 {
    let mut b: u64 = 128;
    while b < 65536 && (24 * b) * (24 * b) < size {
        b *= 2;
    }
    b as u32
}

/// The rolling weak checksum (rsync's, 16-bit halves, each byte offset by 31).
#[derive(Clone, Copy, Default)]
pub struct Rolling {
    a: u32,
    b: u32,
    len: u32,
}

impl Rolling {
    pub fn new(block: &[u8]) -> Self {
        // a = sum(x + 31), b = sum((n - i) * (x + 31)), both mod 2^16; written as two
        // independent sums so the compiler vectorises them (u32 wrapping is exact mod 2^16).
        let n = block.len() as u32;
        let mut sum: u32 = 0;
        let mut wsum: u32 = 0;
        for (i, &x) in block.iter().enumerate() {
            sum = sum.wrapping_add(x as u32);
            wsum = wsum.wrapping_add((n.wrapping_sub(i as u32)).wrapping_mul(x as u32));
        }
        let a = sum.wrapping_add(n.wrapping_mul(CHAR_OFFSET));
        let tri = ((n as u64 * (n as u64 + 1)) / 2) as u32;
        let b = wsum.wrapping_add(tri.wrapping_mul(CHAR_OFFSET));
        Rolling {
            a: a & 0xffff,
            b: b & 0xffff,
            len: n,
        }
    }

    #[inline]
    pub fn roll(&mut self, out: u8, inb: u8) {
        self.a = (self.a.wrapping_add(inb as u32).wrapping_sub(out as u32)) & 0xffff;
        self.b = (self
            .b
            .wrapping_add(self.a)
            .wrapping_sub(self.len.wrapping_mul(out as u32 + CHAR_OFFSET)))
            & 0xffff;
    }
    #[inline]
    pub fn digest(&self) -> u32 {
        self.a | (self.b << 16)
    }
}

const FILTER_BITS: u32 = 22;

/// The weak checksums are already well mixed: a multiply is all the hashing they need.
#[derive(Default)]
struct WeakHasher(u64);

impl Hasher for WeakHasher {
    fn finish(&self) -> u64 {
        self.0 ^ (self.0 >> 29)
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8 | b as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u32(&mut self, v: u32) {
        self.0 = (v as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

#[inline]
fn filter_slot(weak: u32) -> u32 {
    weak.wrapping_mul(0x9E37_79B1) >> (32 - FILTER_BITS)
}

pub fn strong(block: &[u8]) -> [u8; STRONG_LEN] {
    xxh3_128(block).to_be_bytes()
}

/// Writes the signature of `base` to `sig`.
pub fn signature(base: &Path, sig: &Path, block_size: u32) -> io::Result<()> {
    let size = fs::metadata(base)?.len();
    let mut w = SigWriter::create(sig, size, block_size, &base.display().to_string())?;
    let mut err: Option<io::Error> = None;
    let read = read_chunks(base, |c| {
        if err.is_none() {
            err = w.update(c).err();
        }
    });
    match read.and_then(|()| err.map_or(Ok(()), Err)) {
        Ok(()) => w.finish(),
        Err(e) => {
            w.abort();
            Err(e)
        }
    }
}

/// A signature written as the content streams by (the content's size known up front): to a
/// temp file, renamed over the destination by [`SigWriter::finish`].
pub struct SigWriter {
    w: BufWriter<File>,
    bs: usize,
    pending: Vec<u8>,
    total: u64,
    size: u64,
    tmp: PathBuf,
    dst: PathBuf,
    /// The content's file, for messages.
    base: String,
}

impl SigWriter {
    /// Starts the signature of `size` bytes of the content of `base` (a name for messages);
    /// `block_size` 0 chooses it.
    pub fn create(sig: &Path, size: u64, block_size: u32, base: &str) -> io::Result<SigWriter> {
        let bs = if block_size == 0 {
            choose_block_size(size)
        } else {
            block_size
        };
        if !(MIN_BLOCK..=MAX_BLOCK).contains(&bs) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("signature: block size {bs} out of range {MIN_BLOCK}..{MAX_BLOCK}"),
            ));
        }
        let tmp = tmp_path(sig);
        let mut w = BufWriter::with_capacity(1 << 20, File::create(&tmp)?);
        let mut header = Vec::with_capacity(SIG_HEADER_LEN);
        header.extend_from_slice(SIG_MAGIC);
        header.push(VERSION);
        header.push(STRONG_LEN as u8);
        header.extend_from_slice(&[0, 0]);
        header.extend_from_slice(&bs.to_le_bytes());
        header.extend_from_slice(&size.to_le_bytes());
        if let Err(e) = w.write_all(&header) {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        Ok(SigWriter {
            w,
            bs: bs as usize,
            pending: Vec::with_capacity(bs as usize),
            total: 0,
            size,
            tmp,
            dst: sig.to_path_buf(),
            base: base.to_string(),
        })
    }

    /// Adds the next bytes of the content.
    pub fn update(&mut self, mut c: &[u8]) -> io::Result<()> {
        let bs = self.bs;
        self.total += c.len() as u64;
        if !self.pending.is_empty() {
            let take = (bs - self.pending.len()).min(c.len());
            self.pending.extend_from_slice(&c[..take]);
            c = &c[take..];
            if self.pending.len() == bs {
                self.w.write_all(&Rolling::new(&self.pending).digest().to_le_bytes())?;
                self.w.write_all(&strong(&self.pending))?;
                self.pending.clear();
            }
        }
        // Blocks are independent: hash a chunk's blocks on all cores, write in order.
        let full = c.len() / bs * bs;
        let recs: Vec<[u8; 4 + STRONG_LEN]> = c[..full]
            .par_chunks(bs)
            .with_min_len(256)
            .map(|block| {
                let mut r = [0u8; 4 + STRONG_LEN];
                r[..4].copy_from_slice(&Rolling::new(block).digest().to_le_bytes());
                r[4..].copy_from_slice(&strong(block));
                r
            })
            .collect();
        for r in &recs {
            self.w.write_all(r)?;
        }
        self.pending.extend_from_slice(&c[full..]);
        Ok(())
    }

    /// Completes the signature and renames it into place; the content must have been
    /// exactly the size given to [`SigWriter::create`].
    pub fn finish(mut self) -> io::Result<()> {
        let res = (|| {
            if !self.pending.is_empty() {
                self.w.write_all(&Rolling::new(&self.pending).digest().to_le_bytes())?;
                self.w.write_all(&strong(&self.pending))?;
            }
            if self.total != self.size {
                return Err(invalid(format!(
                    "signature: {} changed size while being read ({} -> {})",
                    self.base, self.size, self.total
                )));
            }
            self.w.flush()
        })();
        finish_tmp(res, &self.tmp, &self.dst)
    }

    /// Drops the unfinished signature.
    pub fn abort(self) {
        let _ = fs::remove_file(&self.tmp);
    }
}

/// A parsed signature.
pub struct Signature {
    pub block_size: u32,
    pub base_size: u64,
    pub weak: Vec<u32>,
    pub strong: Vec<[u8; STRONG_LEN]>,
}

impl Signature {
    pub fn read(path: &Path) -> io::Result<Signature> {
        let data = fs::read(path)?;
        Signature::parse(&data).map_err(|m| invalid(format!("{}: {m}", path.display())))
    }

    pub fn parse(data: &[u8]) -> Result<Signature, String> {
        if data.len() < SIG_HEADER_LEN || &data[..4] != SIG_MAGIC {
            return Err("not a cncop signature (bad magic)".into());
        }
        if data[4] != VERSION {
            return Err(format!("unsupported signature version {}", data[4]));
        }
        if data[5] as usize != STRONG_LEN {
            return Err(format!("unsupported strong hash length {}", data[5]));
        }
        let block_size = u32::from_le_bytes(data[8..12].try_into().unwrap());
        let base_size = u64::from_le_bytes(data[12..20].try_into().unwrap());
        if !(MIN_BLOCK..=MAX_BLOCK).contains(&block_size) {
            return Err(format!("bad block size {block_size}"));
        }
        let n = base_size.div_ceil(block_size as u64) as usize;
        let rec = 4 + STRONG_LEN;
        if (data.len() - SIG_HEADER_LEN) as u64 != n as u64 * rec as u64 {
            return Err(format!(
                "truncated or oversized: {} bytes of records for {n} blocks",
                data.len() - SIG_HEADER_LEN
            ));
        }
        let mut weak = Vec::with_capacity(n);
        let mut strong = Vec::with_capacity(n);
        for r in data[SIG_HEADER_LEN..].chunks_exact(rec) {
            weak.push(u32::from_le_bytes(r[..4].try_into().unwrap()));
            strong.push(r[4..].try_into().unwrap());
        }
        Ok(Signature {
            block_size,
            base_size,
            weak,
            strong,
        })
    }
}

/// Statistics of a delta run.
pub struct DeltaStats {
    pub new_size: u64,
    pub delta_size: u64,
    pub copied_bytes: u64,
    pub literal_bytes: u64,
    pub new_blake3: String,
}

/// Delta instruction writer: merges adjacent COPYs, splits DATA at MAX_LITERAL.
struct Emitter<W: Write> {
    w: W,
    written: u64,
    copy: Option<(u64, u64)>,
    lit: Vec<u8>,
    copied: u64,
    literal: u64,
}

impl<W: Write> Emitter<W> {
    fn put(&mut self, b: &[u8]) -> io::Result<()> {
        self.written += b.len() as u64;
        self.w.write_all(b)
    }
    fn flush_copy(&mut self) -> io::Result<()> {
        if let Some((off, len)) = self.copy.take() {
            let mut ins = [0u8; 17];
            ins[0] = OP_COPY;
            ins[1..9].copy_from_slice(&off.to_le_bytes());
            ins[9..17].copy_from_slice(&len.to_le_bytes());
            self.put(&ins)?;
        }
        Ok(())
    }
    fn flush_lit(&mut self) -> io::Result<()> {
        if !self.lit.is_empty() {
            let mut ins = [0u8; 5];
            ins[0] = OP_DATA;
            ins[1..5].copy_from_slice(&(self.lit.len() as u32).to_le_bytes());
            self.written += 5 + self.lit.len() as u64;
            self.w.write_all(&ins)?;
            self.w.write_all(&self.lit)?;
            self.lit.clear();
        }
        Ok(())
    }
    fn copy(&mut self, off: u64, len: u64) -> io::Result<()> {
        self.flush_lit()?;
        self.copied += len;
        match &mut self.copy {
            Some((o, l)) if *o + *l == off => *l += len,
            _ => {
                self.flush_copy()?;
                self.copy = Some((off, len));
            }
        }
        Ok(())
    }
    fn literal(&mut self, bytes: &[u8]) -> io::Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        self.flush_copy()?;
        self.literal += bytes.len() as u64;
        let mut rest = bytes;
        while !rest.is_empty() {
            let take = (MAX_LITERAL - self.lit.len()).min(rest.len());
            self.lit.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.lit.len() == MAX_LITERAL {
                self.flush_lit()?;
            }
        }
        Ok(())
    }
}

/// Streams the new file through a bounded window buffer, hashing it as it goes.
struct Window {
    file: File,
    buf: Vec<u8>,
    start: usize,
    eof: bool,
    cap: usize,
    hasher: blake3::Hasher,
    total: u64,
}

impl Window {
    /// Makes at least `need` bytes available from `start` unless at EOF.
    fn ensure(&mut self, need: usize) -> io::Result<()> {
        if self.buf.len() - self.start >= need || self.eof {
            return Ok(());
        }
        self.buf.drain(..self.start);
        self.start = 0;
        let old = self.buf.len();
        // read_to_end on a bounded reader fills the spare capacity without zeroing it first.
        let want = (self.cap - old) as u64;
        let n = (&mut self.file).take(want).read_to_end(&mut self.buf)?;
        if (n as u64) < want {
            self.eof = true;
        }
        let fresh = &self.buf[old..];
        if fresh.len() >= 1 << 20 {
            self.hasher.update_rayon(fresh);
        } else {
            self.hasher.update(fresh);
        }
        self.total += n as u64;
        Ok(())
    }
    fn avail(&self) -> usize {
        self.buf.len() - self.start
    }
}

/// Writes the delta of `new` against the signature at `sig` to `out`.
pub fn delta(sig: &Path, new: &Path, out: &Path) -> io::Result<DeltaStats> {
    let s = Signature::read(sig)?;
    let tmp = tmp_path(out);
    let res = (|| {
        let w = BufWriter::with_capacity(1 << 20, File::create(&tmp)?);
        let stats = delta_to(&s, crate::source::open(new)?, w)?;
        Ok(stats)
    })();
    finish_tmp(res, &tmp, out)
}

fn delta_to<W: Write>(s: &Signature, file: File, w: W) -> io::Result<DeltaStats> {
    let bs = s.block_size as usize;
    let n = s.weak.len();
    let last_len = if n == 0 {
        0
    } else {
        (s.base_size - (n as u64 - 1) * bs as u64) as usize
    };
    let full = if last_len == bs {
        n
    } else {
        n.saturating_sub(1)
    };
    let mut table: HashMap<u32, Vec<u32>, BuildHasherDefault<WeakHasher>> =
        HashMap::with_capacity_and_hasher(full, Default::default());
    for i in 0..full {
        table.entry(s.weak[i]).or_default().push(i as u32);
    }
    // A bit filter in front of the hash map: most positions miss, and miss cheaply.
    let mut filter = vec![0u64; (1 << FILTER_BITS) / 64];
    for i in 0..full {
        let f = filter_slot(s.weak[i]);
        filter[(f >> 6) as usize] |= 1u64 << (f & 63);
    }
    let short = if last_len > 0 && last_len < bs {
        Some(n - 1)
    } else {
        None
    };

    let mut em = Emitter {
        w,
        written: 0,
        copy: None,
        lit: Vec::with_capacity(MAX_LITERAL),
        copied: 0,
        literal: 0,
    };
    let mut header = Vec::with_capacity(DELTA_HEADER_LEN);
    header.extend_from_slice(DELTA_MAGIC);
    header.push(VERSION);
    header.extend_from_slice(&[0, 0, 0]);
    header.extend_from_slice(&s.block_size.to_le_bytes());
    header.extend_from_slice(&s.base_size.to_le_bytes());
    em.put(&header)?;

    let cap = (8 << 20).max(bs * 4);
    let mut win = Window {
        file,
        buf: Vec::with_capacity(cap),
        start: 0,
        eof: false,
        cap,
        hasher: blake3::Hasher::new(),
        total: 0,
    };
    let mut roll: Option<Rolling> = None;
    let mut expected: Option<usize> = None;
    // Literal run pending in the window: bytes [lit_from, start) of buf.
    loop {
        win.ensure(bs + 1)?;
        let avail = win.avail();
        if avail >= bs && full > 0 {
            let st = win.start;
            let r = match roll {
                Some(r) => r,
                None => Rolling::new(&win.buf[st..st + bs]),
            };
            let weak = r.digest();
            let slot = filter_slot(weak);
            let hit = filter[(slot >> 6) as usize] & (1u64 << (slot & 63)) != 0;
            if hit {
                let block = &win.buf[st..st + bs];
                let sh = strong(block);
                let mut chosen = None;
                // The block after the last match first: the common case, no map lookup.
                if let Some(e) = expected {
                    if e < full && s.weak[e] == weak && s.strong[e] == sh {
                        chosen = Some(e);
                    }
                }
                if chosen.is_none() {
                    chosen = table
                        .get(&weak)
                        .and_then(|c| c.iter().map(|&i| i as usize).find(|&i| s.strong[i] == sh));
                }
                if let Some(i) = chosen {
                    em.copy(i as u64 * bs as u64, bs as u64)?;
                    win.start += bs;
                    expected = Some(i + 1);
                    roll = None;
                    continue;
                }
            }
            // No match: one literal byte, roll the window on when a full window remains.
            let out = win.buf[st];
            em.literal(&[out])?;
            win.start += 1;
            roll = if avail > bs {
                let mut r = r;
                r.roll(out, win.buf[st + bs]);
                Some(r)
            } else {
                None
            };
            continue;
        }
        if !win.eof {
            // No full blocks in the base: nothing can match before the tail.
            let give = avail - bs;
            let st = win.start;
            em.literal(&win.buf[st..st + give])?;
            win.start += give;
            continue;
        }
        // Tail: fewer than a block left; only the base's short last block can match, and
        // only exactly at the end.
        let tail = &win.buf[win.start..];
        let mut lit_end = tail.len();
        let mut tail_copy = false;
        if let Some(si) = short {
            if tail.len() >= last_len {
                let cand = &tail[tail.len() - last_len..];
                if Rolling::new(cand).digest() == s.weak[si] && strong(cand) == s.strong[si] {
                    lit_end = tail.len() - last_len;
                    tail_copy = true;
                }
            }
        }
        let tail = tail.to_vec();
        em.literal(&tail[..lit_end])?;
        if tail_copy {
            if let Some(si) = short {
                em.copy(si as u64 * bs as u64, last_len as u64)?;
            }
        }
        break;
    }
    em.flush_copy()?;
    em.flush_lit()?;
    let new_blake3 = win.hasher.finalize();
    let mut end = [0u8; 41];
    end[0] = OP_END;
    end[1..9].copy_from_slice(&win.total.to_le_bytes());
    end[9..41].copy_from_slice(new_blake3.as_bytes());
    em.put(&end)?;
    em.w.flush()?;
    Ok(DeltaStats {
        new_size: win.total,
        delta_size: em.written,
        copied_bytes: em.copied,
        literal_bytes: em.literal,
        new_blake3: new_blake3.to_hex().to_string(),
    })
}

/// Writes `out` = `base` + `delta`, verified against `expected` (BLAKE3 hex). Leaves no `out`
/// on any failure.
pub fn patch(base: &Path, delta: &Path, out: &Path, expected: &str) -> io::Result<()> {
    let tmp = tmp_path(out);
    let res = patch_to(base, delta, &tmp, expected);
    finish_tmp(res, &tmp, out)
}

fn read_exact_or(r: &mut impl Read, buf: &mut [u8], what: &str) -> io::Result<()> {
    r.read_exact(buf).map_err(|e| {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            invalid(format!("patch: malformed delta: truncated {what}"))
        } else {
            e
        }
    })
}

fn patch_to(base: &Path, delta: &Path, tmp: &Path, expected: &str) -> io::Result<()> {
    let mut d = BufReader::with_capacity(1 << 20, File::open(delta)?);
    let mut header = [0u8; DELTA_HEADER_LEN];
    read_exact_or(&mut d, &mut header, "header")?;
    if &header[..4] != DELTA_MAGIC {
        return Err(invalid(
            "patch: malformed delta: not a cncop delta (bad magic)".into(),
        ));
    }
    if header[4] != VERSION {
        return Err(invalid(format!(
            "patch: unsupported delta version {}",
            header[4]
        )));
    }
    let base_size = u64::from_le_bytes(header[12..20].try_into().unwrap());
    let mut b = File::open(base)?;
    let actual = b.metadata()?.len();
    if actual != base_size {
        return Err(invalid(format!(
            "patch: base is {actual} bytes but the delta was made against {base_size} bytes"
        )));
    }
    let mut o = BufWriter::with_capacity(1 << 20, File::create(tmp)?);
    let mut hasher = blake3::Hasher::new();
    let mut written: u64 = 0;
    let mut buf = vec![0u8; 1 << 20];
    let mut pos: u64 = 0; // current read position of `b`
    loop {
        let mut op = [0u8; 1];
        read_exact_or(&mut d, &mut op, "instruction")?;
        match op[0] {
            OP_COPY => {
                let mut a = [0u8; 16];
                read_exact_or(&mut d, &mut a, "COPY")?;
                let off = u64::from_le_bytes(a[..8].try_into().unwrap());
                let len = u64::from_le_bytes(a[8..].try_into().unwrap());
                if off.checked_add(len).is_none_or(|e| e > base_size) {
                    return Err(invalid(format!(
                        "patch: COPY past the end of the base (offset {off} + length {len} > size {base_size})"
                    )));
                }
                if pos != off {
                    use std::io::Seek;
                    b.seek(io::SeekFrom::Start(off))?;
                }
                let mut left = len;
                while left > 0 {
                    let n = left.min(buf.len() as u64) as usize;
                    b.read_exact(&mut buf[..n]).map_err(|e| {
                        if e.kind() == io::ErrorKind::UnexpectedEof {
                            invalid("patch: base shrank while patching".into())
                        } else {
                            e
                        }
                    })?;
                    hasher.update(&buf[..n]);
                    o.write_all(&buf[..n])?;
                    left -= n as u64;
                }
                pos = off + len;
                written += len;
            }
            OP_DATA => {
                let mut a = [0u8; 4];
                read_exact_or(&mut d, &mut a, "DATA")?;
                let len = u32::from_le_bytes(a) as usize;
                if len == 0 || len > MAX_LITERAL {
                    return Err(invalid(format!(
                        "patch: malformed delta: DATA length {len}"
                    )));
                }
                read_exact_or(&mut d, &mut buf[..len], "DATA")?;
                hasher.update(&buf[..len]);
                o.write_all(&buf[..len])?;
                written += len as u64;
            }
            OP_END => {
                let mut a = [0u8; 40];
                read_exact_or(&mut d, &mut a, "END")?;
                let size = u64::from_le_bytes(a[..8].try_into().unwrap());
                if size != written {
                    return Err(invalid(format!(
                        "patch: malformed delta: END says {size} bytes, instructions gave {written}"
                    )));
                }
                let mut extra = [0u8; 1];
                if d.read(&mut extra)? != 0 {
                    return Err(invalid("patch: malformed delta: data after END".into()));
                }
                let got = hasher.finalize();
                if got.as_bytes()[..] != a[8..] {
                    return Err(invalid(format!(
                        "patch: result BLAKE3 {} does not match the delta's recorded hash",
                        got.to_hex()
                    )));
                }
                if got.to_hex().as_str() != expected.to_ascii_lowercase() {
                    return Err(invalid(format!(
                        "patch: result BLAKE3 {} does not match expected {expected}",
                        got.to_hex()
                    )));
                }
                o.flush()?;
                o.get_ref().sync_all()?;
                return Ok(());
            }
            other => {
                return Err(invalid(format!(
                    "patch: malformed delta: unknown instruction 0x{other:02x}"
                )))
            }
        }
    }
}

fn tmp_path(p: &Path) -> PathBuf {
    let mut name = p.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".tmp-{}-{}", std::process::id(), unique()));
    p.with_file_name(name)
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// Renames `tmp` over `dst` on success, removes it on failure.
fn finish_tmp<T>(res: io::Result<T>, tmp: &Path, dst: &Path) -> io::Result<T> {
    match res {
        Ok(v) => match fs::rename(tmp, dst) {
            Ok(()) => Ok(v),
            Err(e) => {
                let _ = fs::remove_file(tmp);
                Err(e)
            }
        },
        Err(e) => {
            let _ = fs::remove_file(tmp);
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;


    fn rand_bytes(n: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    fn roundtrip(case: &str, base: &[u8], new: &[u8], bs: u32) -> DeltaStats {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        let (bp, np, sp, dp, op) = (
            d.join("base"),
            d.join("new"),
            d.join("sig"),
            d.join("delta"),
            d.join("out"),
        );
        fs::write(&bp, base).unwrap();
        fs::write(&np, new).unwrap();
        signature(&bp, &sp, bs).unwrap();
        let st = delta(&sp, &np, &dp).unwrap();
        patch(&bp, &dp, &op, &st.new_blake3).unwrap();
        assert_eq!(fs::read(&op).unwrap(), new, "{case}");
        assert_eq!(st.new_blake3, crate::hash::blake3_hex(new), "{case}");
        st
    }

    #[test]
    fn rolling_matches_fresh() {
        let data = rand_bytes(5000, 3);
        let mut r = Rolling::new(&data[..700]);
        for i in 0..(data.len() - 700) {
            r.roll(data[i], data[i + 700]);
            assert_eq!(r.digest(), Rolling::new(&data[i + 1..i + 701]).digest());
        }
    }

    #[test]
    fn roundtrips() {
        let base = rand_bytes(100_000, 7);
        roundtrip("same", &base, &base, 512);
        roundtrip("empty-new", &base, &[], 512);
        roundtrip("empty-base", &[], &base, 512);
        roundtrip("both-empty", &[], &[], 0);
        roundtrip("short", &base[..100], &base[..100], 512);
        let mut ins = b"hello".to_vec();
        ins.extend_from_slice(&base);
        let st = roundtrip("insert0", &base, &ins, 512);
        assert_eq!(st.literal_bytes, 5);
        let mut app = base.clone();
        app.extend_from_slice(b"tail");
        let st = roundtrip("append", &base, &app, 512);
        assert_eq!(st.literal_bytes, 4 + 100_000 % 512);
        let mut shuf = base[50_000..].to_vec();
        shuf.extend_from_slice(&base[..50_000]);
        roundtrip("shuffle", &base, &shuf, 512);
        roundtrip("random", &base, &rand_bytes(70_000, 9), 0);
    }

    #[test]
    fn patch_rejects() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        let base = rand_bytes(10_000, 11);
        let new = rand_bytes(10_000, 12);
        let (bp, np, sp, dp, op) = (
            d.join("base"),
            d.join("new"),
            d.join("sig"),
            d.join("delta"),
            d.join("out"),
        );
        fs::write(&bp, &base).unwrap();
        fs::write(&np, &new).unwrap();
        signature(&bp, &sp, 0).unwrap();
        delta(&sp, &np, &dp).unwrap();
        let e = patch(&bp, &dp, &op, &"0".repeat(64)).unwrap_err();
        assert!(e.to_string().contains("does not match expected"));
        assert!(!op.exists());
        // A COPY past the end of the base.
        let mut bad = fs::read(&dp).unwrap()[..DELTA_HEADER_LEN].to_vec();
        bad.push(OP_COPY);
        bad.extend_from_slice(&9_990u64.to_le_bytes());
        bad.extend_from_slice(&20u64.to_le_bytes());
        fs::write(&dp, &bad).unwrap();
        let e = patch(&bp, &dp, &op, &"0".repeat(64)).unwrap_err();
        assert!(e.to_string().contains("past the end"), "{e}");
        assert!(!op.exists());
        assert_eq!(fs::read_dir(d).unwrap().count(), 4);
    }
}

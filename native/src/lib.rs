//! cncop native core: #[napi] wrappers only. The work lives in the plain modules, which
//! `cargo test` exercises without Node. Long calls are AsyncTasks (libuv thread pool), so the
//! JS thread keeps running timers and signal handlers during a 10 GB hash.

#![deny(clippy::all)]

pub mod buffers;
pub mod compress;
pub mod delta;
pub mod durable;
pub mod fork;
pub mod hash;
pub mod inflate;
pub mod lock;
pub mod pack_file;
pub mod read_pack;
pub mod source;
pub mod vss;
pub mod walk;

use std::io;
use std::path::PathBuf;
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};

use napi::bindgen_prelude::{AsyncTask, Buffer, Uint8Array};
use napi::{Env, Error, Result, Status, Task};
use napi_derive::napi;

/// At load, glibc malloc tuned for a process that moves many short-lived buffers between
/// threads: at most two arenas (the rayon and libuv pool threads would each get their own,
/// and memory freed in one is not reused by another), and blocks of 256 KiB and more mapped
/// and unmapped directly, with the heap trimmed past 256 KiB free (128 KiB cost a first
/// backup 25% more time in page faults; glibc's own threshold climbs to 32 MB). Without this, freed file
/// contents stayed resident: cncopd grew by 80 MB and the enqueuer by 60 MB during a first
/// backup.
#[napi_derive::module_init]
fn init() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes the allocator's tuning; called once, at library load.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 * 1024);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 256 * 1024);
    }
}

/// Returns the allocator's free memory to the system (glibc `malloc_trim`); false where
/// there is nothing to do. Long runs call it between batches: freed buffers otherwise stay
/// resident in the allocator's arenas.
#[napi]
pub fn trim_memory() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free pages of the allocator's own arenas.
    unsafe {
        libc::malloc_trim(0) == 1
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    false
}

fn err(e: io::Error) -> Error {
    Error::new(Status::GenericFailure, e.to_string())
}

fn path_err(what: &str, p: &str, e: io::Error) -> Error {
    if e.kind() == io::ErrorKind::InvalidData || e.kind() == io::ErrorKind::InvalidInput {
        return err(e);
    }
    Error::new(
        Status::GenericFailure,
        format!("{what}: {p}: {}", walk::error_text(&e)),
    )
}

/// xxh3-128 of a buffer, 32 lowercase hex digits.
#[napi]
pub fn xxh3(data: Uint8Array) -> String {
    hash::xxh3_hex(&data)
}

/// One zstd frame of `data` at `level` (a per-thread context is reused).
#[napi]
pub fn zstd_compress(data: Uint8Array, level: i32) -> Result<Buffer> {
    compress::compress(&data, level)
        .map(Buffer::from)
        .map_err(err)
}

/// Decompresses zstd `data` into at most `maxSize` bytes, with a window of at most
/// 2^`windowLogMax`; larger output or corrupt input throws.
#[napi]
pub fn zstd_decompress(data: Uint8Array, max_size: u32, window_log_max: u32) -> Result<Buffer> {
    compress::decompress(&data, max_size as usize, window_log_max)
        .map(Buffer::from)
        .map_err(err)
}

/// A small file read for a pack entry (see `readFilesForPack`).
#[napi(object)]
pub struct FileForPack {
    /// Bytes of its data in the batch's `data`, right after the previous file's: the zstd
    /// frame when `compressed`, else the content.
    pub length: u32,
    pub compressed: bool,
    pub blake3: String,
    /// Size and mtime (ns, decimal) of the file after it was read.
    pub size: f64,
    pub mtime_ns: String,
    /// The file's state went into its fork (asked for with `forks`).
    pub forked: bool,
    /// "" when read, else an error code (`ENOENT`, `EACCES`, `EIO`) and text.
    pub error: String,
}

/// Keep each file's backup state in its fork `name` (see `fork::encode_state`) when it
/// still has its listed size and the mtime `mtimesNs[i]` (ns, decimal) once read.
#[napi(object)]
pub struct PackForks {
    pub name: String,
    pub mtimes_ns: Vec<String>,
}

/// A batch of small files read for pack entries: their data end to end in one buffer (a
/// buffer per file cost the JS side a finalizer and a share of a garbage collection each).
#[napi(object)]
pub struct FilesForPack {
    pub data: Buffer,
    pub files: Vec<FileForPack>,
}

pub struct ReadForPackTask {
    paths: Vec<String>,
    level: i32,
    sizes: Option<Vec<f64>>,
    /// The fork name and the listed mtimes.
    forks: Option<(String, Vec<i64>)>,
}

impl Task for ReadForPackTask {
    type Output = (Vec<u8>, Vec<read_pack::ReadFile>);
    type JsValue = FilesForPack;
    fn compute(&mut self) -> Result<Self::Output> {
        let forks = self
            .forks
            .as_ref()
            .map(|(name, mtimes_ns)| read_pack::ForkWrite { name, mtimes_ns });
        let mut files = read_pack::read_many(
            &self.paths,
            self.level,
            self.sizes.as_deref(),
            forks.as_ref(),
        );
        let mut data = Vec::with_capacity(files.iter().map(|f| f.data.len()).sum());
        for f in &mut files {
            data.extend_from_slice(&f.data);
            f.data = Vec::new();
        }
        Ok((data, files))
    }
    fn resolve(&mut self, _env: Env, out: Self::Output) -> Result<FilesForPack> {
        let (data, files) = out;
        Ok(FilesForPack {
            data: Buffer::from(data),
            files: files
                .into_iter()
                .map(|r| FileForPack {
                    length: r.length as u32,
                    compressed: r.compressed,
                    blake3: r.blake3,
                    size: r.size as f64,
                    mtime_ns: r.mtime_ns.to_string(),
                    forked: r.forked,
                    error: r.error,
                })
                .collect(),
        })
    }
}

/// Reads, hashes (BLAKE3) and zstd-compresses many small files on every core, off the JS
/// thread; errors are per file. `sizes`, when given, are the sizes the files are expected
/// to have (a stat fewer per file); the result gives the size each had after its read.
/// `forks` (with `sizes`) also keeps each unchanged file's state in its fork.
#[napi(ts_return_type = "Promise<FilesForPack>")]
pub fn read_files_for_pack(
    paths: Vec<String>,
    level: i32,
    sizes: Option<Vec<f64>>,
    forks: Option<PackForks>,
) -> Result<AsyncTask<ReadForPackTask>> {
    let forks = match forks {
        None => None,
        Some(w) => {
            if sizes.as_ref().map(Vec::len) != Some(paths.len()) || w.mtimes_ns.len() != paths.len()
            {
                return Err(Error::from_reason(
                    "readFilesForPack: forks need a size and an mtime for every path",
                ));
            }
            fork::check_name(&w.name).map_err(|e| Error::from_reason(e.to_string()))?;
            let mtimes = w
                .mtimes_ns
                .iter()
                .map(|m| m.parse::<i64>())
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(|_| Error::from_reason("readFilesForPack: an mtime is not ns"))?;
            Some((w.name, mtimes))
        }
    };
    Ok(AsyncTask::new(ReadForPackTask {
        paths,
        level,
        sizes,
        forks,
    }))
}

/// The frames stay the caller's arrays, referenced, not copied: a copy on the JS thread
/// cost the network a quarter of a second per first backup of the Linux tree.
pub struct VerifyFramesTask {
    frames: Vec<Uint8Array>,
    zstd: Vec<bool>,
    sizes: Vec<u32>,
    blake3: Vec<String>,
    window_log_max: u32,
}

impl Task for VerifyFramesTask {
    type Output = Vec<String>;
    type JsValue = Vec<String>;
    fn compute(&mut self) -> Result<Vec<String>> {
        let checks: Vec<compress::FrameCheck> = self
            .frames
            .iter()
            .zip(&self.zstd)
            .zip(&self.sizes)
            .zip(&self.blake3)
            .map(|(((f, z), s), h)| compress::FrameCheck {
                frame: f,
                zstd: *z,
                size: *s as usize,
                blake3: h,
            })
            .collect();
        Ok(compress::verify_many(&checks, self.window_log_max))
    }
    fn resolve(&mut self, _env: Env, out: Vec<String>) -> Result<Vec<String>> {
        Ok(out)
    }
}

/// Verifies pack body frames in parallel off the JS thread: frame i (zstd when `zstd[i]`)
/// must decode to `sizes[i]` bytes with BLAKE3 `blake3[i]`. Resolves to "" per good frame,
/// else the reason.
#[napi(ts_return_type = "Promise<string[]>")]
pub fn verify_frames(
    frames: Vec<Uint8Array>,
    zstd: Vec<bool>,
    sizes: Vec<u32>,
    blake3: Vec<String>,
    window_log_max: u32,
) -> Result<AsyncTask<VerifyFramesTask>> {
    let n = frames.len();
    if zstd.len() != n || sizes.len() != n || blake3.len() != n {
        return Err(Error::new(
            Status::InvalidArg,
            "verifyFrames: arrays of different lengths",
        ));
    }
    Ok(AsyncTask::new(VerifyFramesTask {
        frames,
        zstd,
        sizes,
        blake3,
        window_log_max,
    }))
}

/// What [`write_file_pack`] writes (see `pack_file.rs`).
#[napi(object)]
pub struct FilePackOptions {
    pub source: String,
    pub out: String,
    /// The bytes before the body, with a 64-digit placeholder for the hash at `hashAt`
    /// (absent: the header's hash is not the body's, as for a delta).
    pub prefix: Uint8Array,
    pub hash_at: Option<u32>,
    /// The bytes after the body frames.
    pub suffix: Uint8Array,
    /// zstd level; 0 writes the body raw.
    pub level: i32,
    /// The size and mtime (ns, decimal) the source must keep.
    pub size: f64,
    pub mtime_ns: String,
    /// Also write the content's block signature here.
    pub sig: Option<String>,
}

/// A written file pack: its bytes, SHA-256 trailer and the content's BLAKE3 (hex).
#[napi(object)]
pub struct FilePackWritten {
    pub bytes: f64,
    pub sha256: String,
    pub blake3: String,
}

pub struct FilePackTask {
    source: String,
    out: String,
    prefix: Vec<u8>,
    hash_at: Option<usize>,
    suffix: Vec<u8>,
    level: i32,
    size: u64,
    mtime_ns: i64,
    sig: Option<String>,
}

impl Task for FilePackTask {
    type Output = pack_file::FilePackWritten;
    type JsValue = FilePackWritten;
    fn compute(&mut self) -> Result<Self::Output> {
        let sig = self.sig.as_ref().map(PathBuf::from);
        pack_file::write_file_pack(&pack_file::FilePack {
            source: self.source.as_ref(),
            out: self.out.as_ref(),
            prefix: &self.prefix,
            hash_at: self.hash_at,
            suffix: &self.suffix,
            level: self.level,
            size: self.size,
            mtime_ns: self.mtime_ns,
            sig: sig.as_deref(),
        })
        .map_err(|e| {
            if e.to_string().starts_with("ECHANGED") {
                err(e)
            } else {
                path_err("pack", &self.source, e)
            }
        })
    }
    fn resolve(&mut self, _env: Env, w: Self::Output) -> Result<FilePackWritten> {
        Ok(FilePackWritten {
            bytes: w.bytes as f64,
            sha256: w.sha256,
            blake3: w.blake3,
        })
    }
}

/// Writes a one-entry pack of a large file in one read of it (hash, zstd frames, block
/// signature); an error starting with `ECHANGED` means the file is not what was listed.
#[napi(ts_return_type = "Promise<FilePackWritten>")]
pub fn write_file_pack(o: FilePackOptions) -> Result<AsyncTask<FilePackTask>> {
    let mtime_ns = o.mtime_ns.parse::<i64>().map_err(|_| {
        Error::new(
            Status::InvalidArg,
            "writeFilePack: mtimeNs is not an integer",
        )
    })?;
    Ok(AsyncTask::new(FilePackTask {
        source: o.source,
        out: o.out,
        prefix: o.prefix.to_vec(),
        hash_at: o.hash_at.map(|a| a as usize),
        suffix: o.suffix.to_vec(),
        level: o.level,
        size: o.size as u64,
        mtime_ns,
        sig: o.sig,
    }))
}

/// A large pack body being written by the network (see `inflate.rs`): frames go in with
/// `write`, in order; `finish` gives the body's BLAKE3 and size.
#[napi]
pub struct BodyInflater {
    inner: Arc<Mutex<Option<inflate::Inflater>>>,
}

/// The body file, once complete.
#[napi(object)]
pub struct InflatedBody {
    pub blake3: String,
    pub size: f64,
}

fn inflate_err(e: io::Error) -> Error {
    // A corrupt or oversized body keeps its `EPACK` mark; anything else is our own I/O.
    Error::new(Status::GenericFailure, e.to_string())
}

/// The frame stays the caller's array (referenced until the task ends), not a copy.
pub struct InflateWriteTask {
    inner: Arc<Mutex<Option<inflate::Inflater>>>,
    frame: Uint8Array,
}

impl Task for InflateWriteTask {
    type Output = ();
    type JsValue = ();
    fn compute(&mut self) -> Result<()> {
        let mut g = self
            .inner
            .lock()
            .map_err(|_| Error::from_reason("inflate: poisoned"))?;
        let inf = g
            .as_mut()
            .ok_or_else(|| Error::from_reason("inflate: the body is already ended"))?;
        inf.write(&self.frame).map_err(inflate_err)
    }
    fn resolve(&mut self, _env: Env, _out: ()) -> Result<()> {
        Ok(())
    }
}

pub struct InflateFinishTask {
    inner: Arc<Mutex<Option<inflate::Inflater>>>,
}

impl Task for InflateFinishTask {
    type Output = (String, u64);
    type JsValue = InflatedBody;
    fn compute(&mut self) -> Result<Self::Output> {
        let inf = self
            .inner
            .lock()
            .map_err(|_| Error::from_reason("inflate: poisoned"))?
            .take()
            .ok_or_else(|| Error::from_reason("inflate: the body is already ended"))?;
        inf.finish().map_err(inflate_err)
    }
    fn resolve(&mut self, _env: Env, out: Self::Output) -> Result<InflatedBody> {
        Ok(InflatedBody {
            blake3: out.0,
            size: out.1 as f64,
        })
    }
}

#[napi]
impl BodyInflater {
    /// Decompresses (when zstd), hashes and writes the next frame.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn write(&self, frame: Uint8Array) -> AsyncTask<InflateWriteTask> {
        AsyncTask::new(InflateWriteTask {
            inner: self.inner.clone(),
            frame,
        })
    }

    /// Ends the body; rejects when its zstd stream is cut short.
    #[napi(ts_return_type = "Promise<InflatedBody>")]
    pub fn finish(&self) -> AsyncTask<InflateFinishTask> {
        AsyncTask::new(InflateFinishTask {
            inner: self.inner.clone(),
        })
    }

    /// Drops an unfinished body (closing its file; removing it is the caller's).
    #[napi]
    pub fn abort(&self) {
        if let Ok(mut g) = self.inner.lock() {
            g.take();
        }
    }
}

/// Starts a body of at most `maxSize` bytes, written to `path` (none: only checked); frames
/// are zstd when `zstd`, with a window of at most 2^`windowLogMax`. Errors of a bad body
/// start with `EPACK`.
#[napi]
pub fn inflate_start(
    path: Option<String>,
    zstd: bool,
    max_size: f64,
    window_log_max: u32,
) -> Result<BodyInflater> {
    let p = path.as_deref().map(std::path::Path::new);
    let inf = inflate::Inflater::create(p, zstd, max_size as u64, window_log_max)
        .map_err(|e| path_err("inflate", path.as_deref().unwrap_or(""), e))?;
    Ok(BodyInflater {
        inner: Arc::new(Mutex::new(Some(inf))),
    })
}

/// BLAKE3-256 of a buffer, 64 lowercase hex digits.
#[napi]
pub fn blake3(data: Uint8Array) -> String {
    hash::blake3_hex(&data)
}

pub struct HashFileTask {
    path: String,
    blake: bool,
}

impl Task for HashFileTask {
    type Output = String;
    type JsValue = String;
    fn compute(&mut self) -> Result<String> {
        let p = PathBuf::from(&self.path);
        let r = if self.blake {
            hash::blake3_file(&p)
        } else {
            hash::xxh3_file(&p)
        };
        r.map_err(|e| path_err("hash", &self.path, e))
    }
    fn resolve(&mut self, _env: Env, out: String) -> Result<String> {
        Ok(out)
    }
}

pub struct SyncFsTask {
    path: String,
}

impl Task for SyncFsTask {
    type Output = bool;
    type JsValue = bool;
    fn compute(&mut self) -> Result<bool> {
        durable::sync_fs(self.path.as_ref()).map_err(|e| path_err("syncfs", &self.path, e))
    }
    fn resolve(&mut self, _env: Env, out: bool) -> Result<bool> {
        Ok(out)
    }
}

/// Flushes the whole file system holding `path` (Linux `syncfs`); false where the platform
/// has no such call.
#[napi(ts_return_type = "Promise<boolean>")]
pub fn sync_fs(path: String) -> AsyncTask<SyncFsTask> {
    AsyncTask::new(SyncFsTask { path })
}

/// xxh3-128 of a file's content, 32 lowercase hex digits.
#[napi(ts_return_type = "Promise<string>")]
pub fn xxh3_file(path: String) -> AsyncTask<HashFileTask> {
    AsyncTask::new(HashFileTask { path, blake: false })
}

/// BLAKE3-256 of a file's content, 64 lowercase hex digits.
#[napi(ts_return_type = "Promise<string>")]
pub fn blake3_file(path: String) -> AsyncTask<HashFileTask> {
    AsyncTask::new(HashFileTask { path, blake: true })
}

pub struct SignatureTask {
    base: String,
    sig: String,
    block_size: u32,
}

impl Task for SignatureTask {
    type Output = ();
    type JsValue = ();
    fn compute(&mut self) -> Result<()> {
        delta::signature(self.base.as_ref(), self.sig.as_ref(), self.block_size)
            .map_err(|e| path_err("signature", &self.base, e))
    }
    fn resolve(&mut self, _env: Env, _out: ()) -> Result<()> {
        Ok(())
    }
}

/// Writes the block signature of `basePath` to `sigPath`; `blockSize` 0 chooses it.
#[napi(ts_return_type = "Promise<void>")]
pub fn signature(
    base_path: String,
    sig_path: String,
    block_size: Option<u32>,
) -> AsyncTask<SignatureTask> {
    AsyncTask::new(SignatureTask {
        base: base_path,
        sig: sig_path,
        block_size: block_size.unwrap_or(0),
    })
}

/// Statistics of a delta (sizes in bytes).
#[napi(object)]
pub struct DeltaStats {
    pub new_size: f64,
    pub delta_size: f64,
    pub copied_bytes: f64,
    pub literal_bytes: f64,
    pub new_blake3: String,
}

pub struct DeltaTask {
    sig: String,
    new: String,
    out: String,
}

impl Task for DeltaTask {
    type Output = delta::DeltaStats;
    type JsValue = DeltaStats;
    fn compute(&mut self) -> Result<delta::DeltaStats> {
        delta::delta(self.sig.as_ref(), self.new.as_ref(), self.out.as_ref())
            .map_err(|e| path_err("delta", &self.new, e))
    }
    fn resolve(&mut self, _env: Env, s: delta::DeltaStats) -> Result<DeltaStats> {
        Ok(DeltaStats {
            new_size: s.new_size as f64,
            delta_size: s.delta_size as f64,
            copied_bytes: s.copied_bytes as f64,
            literal_bytes: s.literal_bytes as f64,
            new_blake3: s.new_blake3,
        })
    }
}

/// Writes the delta of `newPath` against the signature `sigPath` to `deltaPath`.
#[napi(ts_return_type = "Promise<DeltaStats>")]
pub fn delta(sig_path: String, new_path: String, delta_path: String) -> AsyncTask<DeltaTask> {
    AsyncTask::new(DeltaTask {
        sig: sig_path,
        new: new_path,
        out: delta_path,
    })
}

pub struct PatchTask {
    base: String,
    delta: String,
    out: String,
    expected: String,
}

impl Task for PatchTask {
    type Output = ();
    type JsValue = ();
    fn compute(&mut self) -> Result<()> {
        delta::patch(
            self.base.as_ref(),
            self.delta.as_ref(),
            self.out.as_ref(),
            &self.expected,
        )
        .map_err(|e| path_err("patch", &self.base, e))
    }
    fn resolve(&mut self, _env: Env, _out: ()) -> Result<()> {
        Ok(())
    }
}

/// Writes `outPath` = base + delta, verified against `expectedBlake3`; no `outPath` on failure.
#[napi(ts_return_type = "Promise<void>")]
pub fn patch(
    base_path: String,
    delta_path: String,
    out_path: String,
    expected_blake3: String,
) -> AsyncTask<PatchTask> {
    AsyncTask::new(PatchTask {
        base: base_path,
        delta: delta_path,
        out: out_path,
        expected: expected_blake3,
    })
}

/// A held OS file lock.
#[napi]
pub struct NativeLock {
    inner: lock::Lock,
}

#[napi]
impl NativeLock {
    /// Releases the lock (idempotent).
    #[napi]
    pub fn release(&mut self) {
        self.inner.release();
    }
}

pub struct LockTask {
    path: String,
    wait: bool,
}

impl Task for LockTask {
    type Output = Option<lock::Lock>;
    type JsValue = Option<NativeLock>;
    fn compute(&mut self) -> Result<Option<lock::Lock>> {
        lock::lock(self.path.as_ref(), self.wait).map_err(|e| path_err("lock", &self.path, e))
    }
    fn resolve(&mut self, _env: Env, out: Option<lock::Lock>) -> Result<Option<NativeLock>> {
        Ok(out.map(|inner| NativeLock { inner }))
    }
}

/// Takes an exclusive OS lock on `path`; null when held elsewhere and `wait` is false.
#[napi(ts_return_type = "Promise<NativeLock | null>")]
pub fn lock_file(path: String, wait: bool) -> AsyncTask<LockTask> {
    AsyncTask::new(LockTask { path, wait })
}

/// Reads a named fork; null when absent.
#[napi]
pub fn fork_read(path: String, name: String) -> Result<Option<Buffer>> {
    fork::read(path.as_ref(), &name)
        .map(|o| o.map(Buffer::from))
        .map_err(|e| path_err("fork", &path, e))
}

/// Writes a named fork without changing the file's mtime.
#[napi]
pub fn fork_write(path: String, name: String, value: Uint8Array) -> Result<()> {
    fork::write(path.as_ref(), &name, &value).map_err(|e| path_err("fork", &path, e))
}

/// Removes a named fork; no error when absent.
#[napi]
pub fn fork_remove(path: String, name: String) -> Result<()> {
    fork::remove(path.as_ref(), &name).map_err(|e| path_err("fork", &path, e))
}

/// Whether the filesystem holding `dir` supports forks.
#[napi]
pub fn forks_supported(dir: String) -> bool {
    fork::supported(dir.as_ref())
}

/// Walk options as the addon takes them.
#[napi(object)]
pub struct NativeWalkOptions {
    pub follow_links: bool,
    pub skip_links: bool,
    pub one_file_system: bool,
    pub include: Vec<String>,
    pub exclude: Vec<String>,
    pub report_excluded: bool,
    pub batch_size: u32,
}

/// One batch: `meta` holds 7 little-endian i64 per entry (kind | excluded << 8 | hasText << 9,
/// size, mtimeNs, ctimeNs, ino, dev, mode); `paths` and `texts` (link target or error text,
/// "" when none) are joined with NUL, which no path contains: one JS string per batch is
/// much cheaper to create than one per entry.
#[napi(object)]
pub struct WalkBatch {
    pub count: u32,
    pub paths: String,
    pub meta: Buffer,
    pub texts: String,
}

/// A running walk; call next() until it gives null.
#[napi]
pub struct WalkHandle {
    rx: Arc<Mutex<Option<Receiver<Vec<walk::Entry>>>>>,
}

pub struct NextTask {
    rx: Arc<Mutex<Option<Receiver<Vec<walk::Entry>>>>>,
}

impl Task for NextTask {
    type Output = Option<Vec<walk::Entry>>;
    type JsValue = Option<WalkBatch>;
    fn compute(&mut self) -> Result<Self::Output> {
        let guard = self
            .rx
            .lock()
            .map_err(|_| Error::from_reason("walk: poisoned"))?;
        Ok(guard.as_ref().and_then(|rx| rx.recv().ok()))
    }
    fn resolve(&mut self, _env: Env, out: Self::Output) -> Result<Self::JsValue> {
        Ok(out.map(|entries| {
            let count = entries.len() as u32;
            let mut meta = Vec::with_capacity(entries.len() * 56);
            let mut paths = String::with_capacity(entries.len() * 32);
            let mut texts = String::new();
            for (i, e) in entries.into_iter().enumerate() {
                if i > 0 {
                    paths.push('\0');
                    texts.push('\0');
                }
                let flags =
                    e.kind as i64 | (e.excluded as i64) << 8 | (e.text.is_some() as i64) << 9;
                for v in [
                    flags,
                    e.size,
                    e.mtime_ns,
                    e.ctime_ns,
                    e.ino as i64,
                    e.dev as i64,
                    e.mode as i64,
                ] {
                    meta.extend_from_slice(&v.to_le_bytes());
                }
                paths.push_str(&e.path);
                if let Some(t) = &e.text {
                    texts.push_str(t);
                }
            }
            WalkBatch {
                count,
                paths,
                meta: Buffer::from(meta),
                texts,
            }
        }))
    }
}

#[napi]
impl WalkHandle {
    /// The next batch, or null at the end.
    #[napi(ts_return_type = "Promise<WalkBatch | null>")]
    pub fn next(&self) -> AsyncTask<NextTask> {
        AsyncTask::new(NextTask {
            rx: self.rx.clone(),
        })
    }

    /// Stops the walk early.
    #[napi]
    pub fn close(&self) {
        if let Ok(mut g) = self.rx.try_lock() {
            g.take();
        }
    }
}

/// Starts a walk; throws when `root` is not a readable directory or a glob is invalid.
#[napi]
pub fn walk_start(root: String, options: NativeWalkOptions) -> Result<WalkHandle> {
    let opts = walk::Options {
        follow_links: options.follow_links,
        skip_links: options.skip_links,
        one_file_system: options.one_file_system,
        include: options.include,
        exclude: options.exclude,
        report_excluded: options.report_excluded,
        batch_size: options.batch_size as usize,
    };
    let w = walk::start(root.as_ref(), opts).map_err(Error::from_reason)?;
    Ok(WalkHandle {
        rx: Arc::new(Mutex::new(Some(w.rx))),
    })
}

/// A created shadow copy.
#[napi(object)]
pub struct VssShadow {
    pub id: String,
    pub device_path: String,
}

/// Creates a VSS shadow copy of `volume` (e.g. `C:\`). Windows only; throws elsewhere.
#[napi]
pub fn vss_create(volume: String) -> Result<VssShadow> {
    vss::provider()
        .create(&volume)
        .map(|s| VssShadow {
            id: s.id,
            device_path: s.device_path,
        })
        .map_err(err)
}

/// Releases a shadow copy made by vssCreate.
#[napi]
pub fn vss_release(id: String) -> Result<()> {
    vss::provider().release(&id).map_err(err)
}

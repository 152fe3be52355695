//! Parallel, deterministic directory walk.
//!
//! One thread runs the depth-first walk in order (siblings sorted by the bytes of their
//! UTF-8 names, a directory before its content) and hands batches to JS through a bounded
//! channel. Directory listings (readdir + fstatat + readlink + stat of every entry) run on
//! the rayon pool: a worker that lists a directory starts the listings of its real
//! subdirectories right away, so the pool runs ahead of the walker on all cores, while a
//! budget of PREFETCH_ENTRIES listed entries (not listings: a listing of 100k entries weighs
//! what 100k listings of one do) bounds memory. Symlinked directories are listed on
//! demand by the walker, which knows the ancestors and so the loops. The portable twin is
//! src/native/portable/walk.ts.

use std::ffi::OsString;
use std::fs::{self, Metadata};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::Arc;

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

#[cfg(unix)]
use std::os::unix::fs::MetadataExt;

pub const KIND_FILE: u8 = 0;
pub const KIND_DIR: u8 = 1;
pub const KIND_SYMLINK: u8 = 2;
pub const KIND_OTHER: u8 = 3;
pub const KIND_ERROR: u8 = 4;

/// Walk options (see WalkOptions in src/native/types.ts).
#[derive(Clone, Default)]
pub struct Options {
    pub follow_links: bool,
    pub skip_links: bool,
    pub one_file_system: bool,
    pub include: Vec<String>,
    pub exclude: Vec<String>,
    pub report_excluded: bool,
    pub batch_size: usize,
}

/// One walk entry.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Entry {
    pub path: String,
    pub kind: u8,
    pub size: i64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
    pub ino: u64,
    pub dev: u64,
    pub mode: u32,
    /// Link target (symlinks, followed links) or error text (kind error).
    pub text: Option<String>,
    pub excluded: bool,
}

/// `CODE: description`, identical to errorText() in the portable twin.
pub fn error_text(e: &io::Error) -> String {
    let code = errno_name(e);
    let what = match code.as_str() {
        "EACCES" => "permission denied",
        "ENOENT" => "vanished",
        "ELOOP" => "symlink loop",
        "EPERM" => "operation not permitted",
        "ENOTDIR" => "not a directory",
        "ENAMETOOLONG" => "name too long",
        "EIO" => "i/o error",
        _ => "error",
    };
    format!("{code}: {what}")
}

#[cfg(unix)]
fn errno_name(e: &io::Error) -> String {
    let Some(n) = e.raw_os_error() else {
        return "EIO".into();
    };
    let name = match n {
        libc::EACCES => "EACCES",
        libc::ENOENT => "ENOENT",
        libc::ELOOP => "ELOOP",
        libc::EPERM => "EPERM",
        libc::ENOTDIR => "ENOTDIR",
        libc::ENAMETOOLONG => "ENAMETOOLONG",
        libc::EIO => "EIO",
        libc::EMFILE => "EMFILE",
        libc::ENFILE => "ENFILE",
        libc::ENOMEM => "ENOMEM",
        libc::EINVAL => "EINVAL",
        libc::ESTALE => "ESTALE",
        libc::EOVERFLOW => "EOVERFLOW",
        libc::ENXIO => "ENXIO",
        libc::ENODEV => "ENODEV",
        _ => return format!("E{n}"),
    };
    name.into()
}

#[cfg(not(unix))]
fn errno_name(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::PermissionDenied => "EPERM".into(),
        io::ErrorKind::NotFound => "ENOENT".into(),
        _ => "EIO".into(),
    }
}

fn meta_fields(e: &mut Entry, m: &Metadata) {
    e.size = m.len() as i64;
    #[cfg(unix)]
    {
        e.mtime_ns = m.mtime() * 1_000_000_000 + m.mtime_nsec();
        e.ctime_ns = m.ctime() * 1_000_000_000 + m.ctime_nsec();
        e.ino = m.ino();
        e.dev = m.dev();
        e.mode = m.mode();
    }
    #[cfg(not(unix))]
    {
        // std exposes neither ctime, inode nor device on Windows: mtime stands in for
        // ctime, and ino/dev stay 0 (the portable twin reports Node's values there).
        e.mtime_ns = m
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_nanos() as i64)
            .unwrap_or(0);
        e.ctime_ns = e.mtime_ns;
        e.mode = if m.is_dir() { 0o040755 } else { 0o100644 };
    }
}

fn kind_of(m: &Metadata) -> u8 {
    let t = m.file_type();
    if t.is_symlink() {
        KIND_SYMLINK
    } else if t.is_dir() {
        KIND_DIR
    } else if t.is_file() {
        KIND_FILE
    } else {
        KIND_OTHER
    }
}

#[cfg(unix)]
fn dev_ino(m: &Metadata) -> (u64, u64) {
    (m.dev(), m.ino())
}
#[cfg(not(unix))]
fn dev_ino(_m: &Metadata) -> (u64, u64) {
    (0, 0)
}

/// One child as listed by a worker: all the syscalls are done off the walker thread.
struct Child {
    name: String,
    os_name: OsString,
    lstat: io::Result<Metadata>,
    link: Option<String>,
    /// stat() through the link, when following links.
    target: Option<io::Result<Metadata>>,
    /// This directory's own listing, already started by the worker that listed its parent.
    prefetched: Option<Pending>,
}

/// A listing on its way; gives its prefetch budget back when received or dropped.
struct Pending {
    rx: Receiver<Listing>,
    budget: Option<Arc<AtomicIsize>>,
}

/// The entries a listing holds, charged against the prefetch budget until its children
/// have been turned into the walker's (much smaller) plans.
struct Charge {
    budget: Arc<AtomicIsize>,
    n: isize,
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.budget.fetch_add(self.n, Ordering::Relaxed);
    }
}

/// A directory's children, sorted, with their budget charge.
struct Listed {
    children: Vec<Child>,
    charge: Charge,
}

impl Pending {
    fn recv(self) -> Listing {
        self.rx
            .recv()
            .unwrap_or_else(|_| Err(io::Error::other("listing worker died")))
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if let Some(b) = &self.budget {
            b.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// What listing workers need to start the listings of subdirectories ahead of the walker.
struct Prefetch {
    follow: bool,
    exclude: Option<Arc<GlobSet>>,
    /// Root device, when not crossing filesystems.
    one_fs_dev: Option<u64>,
    /// Entries (plus one per started listing) that may be listed ahead and not yet consumed.
    budget: Arc<AtomicIsize>,
}

/// How many entries may be listed ahead of the walker: a few hundred bytes each, so about
/// 10 MB, enough to keep every core listing.
const PREFETCH_ENTRIES: isize = 32768;

type Listing = io::Result<Listed>;

fn list_dir(dir: &Path, rel: &str, ctx: &Arc<Prefetch>) -> Listing {
    let mut out = Vec::new();
    for de in fs::read_dir(dir)? {
        let de = de?;
        let os_name = de.file_name();
        let name = os_name.to_string_lossy().into_owned();
        // fstatat relative to the open directory: no path resolution from the root.
        let lstat = de.metadata();
        let mut link = None;
        let mut target = None;
        if let Ok(m) = &lstat {
            if m.file_type().is_symlink() {
                let abs = dir.join(&os_name);
                link = fs::read_link(&abs)
                    .ok()
                    .map(|t| t.to_string_lossy().into_owned());
                if ctx.follow {
                    target = Some(fs::metadata(&abs));
                }
            }
        }
        out.push(Child {
            name,
            os_name,
            lstat,
            link,
            target,
            prefetched: None,
        });
    }
    out.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
    let n = out.len() as isize;
    ctx.budget.fetch_sub(n, Ordering::Relaxed);
    let charge = Charge {
        budget: ctx.budget.clone(),
        n,
    };
    // Start the listings of real subdirectories the walker will enter (symlinked ones are
    // left to the walker, which knows the ancestors and so the loops).
    for c in &mut out {
        let Ok(m) = &c.lstat else { continue };
        if !m.is_dir() {
            continue;
        }
        let crel = if rel.is_empty() {
            c.name.clone()
        } else {
            format!("{rel}/{}", c.name)
        };
        if ctx.exclude.as_ref().is_some_and(|x| x.is_match(&crel)) {
            continue;
        }
        if ctx.one_fs_dev.is_some_and(|d| dev_ino(m).0 != d) {
            continue;
        }
        if ctx.budget.fetch_sub(1, Ordering::Relaxed) <= 0 {
            ctx.budget.fetch_add(1, Ordering::Relaxed);
            break;
        }
        c.prefetched = Some(spawn_list(dir.join(&c.os_name), crel, ctx, true));
    }
    Ok(Listed {
        children: out,
        charge,
    })
}

fn spawn_list(dir: PathBuf, rel: String, ctx: &Arc<Prefetch>, budgeted: bool) -> Pending {
    let (tx, rx) = mpsc::sync_channel(1);
    let c = ctx.clone();
    rayon::spawn(move || {
        let _ = tx.send(list_dir(&dir, &rel, &c));
    });
    Pending {
        rx,
        budget: budgeted.then(|| ctx.budget.clone()),
    }
}

fn build_set(patterns: &[String]) -> Result<Option<GlobSet>, String> {
    if patterns.is_empty() {
        return Ok(None);
    }
    let mut b = GlobSetBuilder::new();
    // picomatch lets `dir/**` match `dir` itself; globset does not, so add `dir` too.
    let extra = patterns
        .iter()
        .filter_map(|p| p.strip_suffix("/**").map(str::to_string));
    for p in patterns.iter().cloned().chain(extra) {
        let g = GlobBuilder::new(&p)
            .literal_separator(true)
            .backslash_escape(true)
            .build()
            .map_err(|e| format!("bad glob {p:?}: {e}"))?;
        b.add(g);
    }
    b.build().map(Some).map_err(|e| e.to_string())
}

/// Plan for one child, decided before any entry of the directory is emitted.
struct Plan {
    entry: Entry,
    included: bool,
    abs: PathBuf,
    listing: Option<Pending>,
    dev_ino: (u64, u64),
}

struct Walker {
    opts: Options,
    ctx: Arc<Prefetch>,
    include: Option<GlobSet>,
    exclude: Option<Arc<GlobSet>>,
    root_dev: u64,
    batch: Vec<Entry>,
    tx: SyncSender<Vec<Entry>>,
}

/// The consumer went away: stop walking.
struct Closed;

impl Walker {
    fn emit(&mut self, e: Entry) -> Result<(), Closed> {
        self.batch.push(e);
        if self.batch.len() >= self.opts.batch_size {
            let b = std::mem::take(&mut self.batch);
            self.tx.send(b).map_err(|_| Closed)?;
        }
        Ok(())
    }

    fn walk_dir(
        &mut self,
        dir_abs: &Path,
        dir_rel: &str,
        listed: Listed,
        ancestors: &mut Vec<(u64, u64)>,
        parent_included: bool,
    ) -> Result<(), Closed> {
        let Listed { children, charge } = listed;
        let mut plans: Vec<Plan> = Vec::with_capacity(children.len());
        for c in children {
            let rel = if dir_rel.is_empty() {
                c.name.clone()
            } else {
                format!("{dir_rel}/{}", c.name)
            };
            if self.exclude.as_ref().is_some_and(|s| s.is_match(&rel)) {
                continue;
            }
            let included =
                parent_included || self.include.as_ref().is_none_or(|s| s.is_match(&rel));
            let mut e = Entry {
                path: rel,
                ..Default::default()
            };
            let mut descend = false;
            let mut di = (0, 0);
            match &c.lstat {
                Err(err) => {
                    e.kind = KIND_ERROR;
                    e.text = Some(error_text(err));
                }
                Ok(m) => {
                    let mut m = m;
                    if m.file_type().is_symlink() {
                        if self.opts.skip_links {
                            continue;
                        }
                        e.text = c.link.clone();
                        if let Some(Ok(t)) = &c.target {
                            m = t;
                        }
                    }
                    e.kind = kind_of(m);
                    meta_fields(&mut e, m);
                    if e.kind == KIND_DIR {
                        di = dev_ino(m);
                        if ancestors.contains(&di) {
                            e.kind = KIND_ERROR;
                            e.text = Some("ELOOP: symlink loop".into());
                        } else {
                            descend = !(self.opts.one_file_system && e.dev != self.root_dev);
                        }
                    }
                }
            }
            let abs = if descend {
                dir_abs.join(&c.os_name)
            } else {
                PathBuf::new()
            };
            let listing = if descend {
                Some(match c.prefetched {
                    Some(p) => p,
                    None => spawn_list(abs.clone(), e.path.clone(), &self.ctx, false),
                })
            } else {
                None
            };
            plans.push(Plan {
                entry: e,
                included,
                abs,
                listing,
                dev_ino: di,
            });
        }
        // The children are plans now: their listing no longer counts against the budget.
        drop(charge);
        for p in plans {
            let mut e = p.entry;
            let show = p.included || self.opts.report_excluded;
            e.excluded = !p.included;
            match p.listing {
                None => {
                    if show {
                        self.emit(e)?;
                    }
                }
                Some(pending) => {
                    let listing = pending.recv();
                    match listing {
                        Err(err) => {
                            e.kind = KIND_ERROR;
                            e.text = Some(error_text(&err));
                            if show {
                                self.emit(e)?;
                            }
                        }
                        Ok(children) => {
                            let rel = e.path.clone();
                            if show {
                                self.emit(e)?;
                            }
                            ancestors.push(p.dev_ino);
                            let r = self.walk_dir(&p.abs, &rel, children, ancestors, p.included);
                            ancestors.pop();
                            r?;
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

/// A running walk: batches arrive on `rx`; dropping it stops the walk.
pub struct Walk {
    pub rx: Receiver<Vec<Entry>>,
}

/// Starts a walk of `root` on a background thread. Fails at once when `root` is not a
/// readable directory or a pattern is invalid.
pub fn start(root: &Path, opts: Options) -> Result<Walk, String> {
    let include = build_set(&opts.include)?;
    let exclude = build_set(&opts.exclude)?.map(Arc::new);
    let meta =
        fs::metadata(root).map_err(|e| format!("walk: {}: {}", root.display(), error_text(&e)))?;
    if !meta.is_dir() {
        return Err(format!("walk: {} is not a directory", root.display()));
    }
    #[cfg(unix)]
    let root_dev = meta.dev();
    #[cfg(not(unix))]
    let root_dev = 0;
    let ctx = Arc::new(Prefetch {
        follow: opts.follow_links && !opts.skip_links,
        exclude: exclude.clone(),
        one_fs_dev: opts.one_file_system.then_some(root_dev),
        budget: Arc::new(AtomicIsize::new(PREFETCH_ENTRIES)),
    });
    let children = list_dir(root, "", &ctx)
        .map_err(|e| format!("walk: {}: {}", root.display(), error_text(&e)))?;
    let (tx, rx) = mpsc::sync_channel::<Vec<Entry>>(2);
    let root = root.to_path_buf();
    let mut opts = opts;
    if opts.batch_size == 0 {
        opts.batch_size = 4096;
    }
    let di = dev_ino(&meta);
    std::thread::Builder::new()
        .name("cncop-walk".into())
        .stack_size(64 << 20)
        .spawn(move || {
            let mut w = Walker {
                opts,
                ctx,
                include,
                exclude,
                root_dev,
                batch: Vec::new(),
                tx,
            };
            let mut ancestors = vec![di];
            if w.walk_dir(&root, "", children, &mut ancestors, false)
                .is_ok()
            {
                let b = std::mem::take(&mut w.batch);
                if !b.is_empty() {
                    let _ = w.tx.send(b);
                }
            }
        })
        .map_err(|e| e.to_string())?;
    Ok(Walk { rx })
}

/// Convenience for tests: the whole listing.
pub fn collect(root: &Path, opts: Options) -> Result<Vec<Entry>, String> {
    let w = start(root, opts)?;
    let mut all = Vec::new();
    for b in w.rx {
        all.extend(b);
    }
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorted_with_loops_and_filters() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        fs::create_dir_all(d.join("a/b")).unwrap();
        fs::create_dir_all(d.join("a.b")).unwrap();
        fs::write(d.join("a/b/x.txt"), "x").unwrap();
        fs::write(d.join(".hidden"), "h").unwrap();
        fs::write(d.join("a.b/y.log"), "y").unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink("..", d.join("a/up")).unwrap();
        let opts = Options {
            follow_links: true,
            batch_size: 2,
            ..Default::default()
        };
        let all = collect(d, opts.clone()).unwrap();
        let paths: Vec<_> = all.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                ".hidden",
                "a",
                "a/b",
                "a/b/x.txt",
                "a/up",
                "a.b",
                "a.b/y.log"
            ]
        );
        assert_eq!(all[4].kind, KIND_ERROR);
        assert_eq!(all[4].text.as_deref(), Some("ELOOP: symlink loop"));
        let inc = collect(
            d,
            Options {
                include: vec!["**/*.txt".into()],
                exclude: vec!["a.b".into()],
                report_excluded: true,
                ..opts
            },
        )
        .unwrap();
        let got: Vec<_> = inc.iter().map(|e| (e.path.as_str(), e.excluded)).collect();
        assert_eq!(
            got,
            [
                (".hidden", true),
                ("a", true),
                ("a/b", true),
                ("a/b/x.txt", false),
                ("a/up", true)
            ]
        );
    }
}

#[cfg(test)]
mod bench {
    /// `CNCOP_WALK_BENCH=/path cargo test --release walk_bench -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn walk_bench() {
        let root = std::env::var("CNCOP_WALK_BENCH").unwrap();
        for _ in 0..3 {
            let t = std::time::Instant::now();
            let opts = super::Options {
                batch_size: 4096,
                ..Default::default()
            };
            let n = super::collect(root.as_ref(), opts).unwrap().len();
            println!("{n} entries in {:?}", t.elapsed());
        }
    }
}

// Pre-run command: make sure a network share (or any mounted disk) is really there before a
// job reads from it or writes to it. Without this, a share that failed to mount leaves an
// empty directory behind, and a backup job happily backs up "nothing" (and a CCS job may
// then prune every file from the cloud, up to its delete collar).
//
// Copy to Bin/ and set it as the job's prerun:
//   cncopjobs edit nas --prerun "check_share.mjs /mnt/nas --mount --marker .cncop-share --min-free 5G"
//
//   DIR               the share's mount point
//   --mount           when DIR is not a mount point, run `mount DIR` (an /etc/fstab entry)
//   --require-mount   fail when DIR is not a mount point (implied by --mount)
//   --marker NAME     a file that must exist in DIR (create it once on the share)
//   --min-free SIZE   free space DIR must have (bytes, or with K, M, G, T)
//   --read-only       skip the write test (by default a probe file is written and removed)
//
// --mount and --require-mount are for Linux and macOS; on Windows, give DIR as a UNC path
// (\\nas\backup) and use --marker.
//
// Exit status 0 when every check passes; otherwise one line naming the failed check, exit 1,
// and cncopagent does not run the job.
//
// Runs through the cncop executable (`cncop zx`), which provides zx's globals ($, fs, path,
// ...) and the job's environment (CNCOP_JOB_ID, CNCOP_JOB_TITLE, CNCOP_HOME, ...).
import { parseArgs } from "node:util";

const { values: opt, positionals } = parseArgs({
  args: process.argv.slice(2),
  allowPositionals: true,
  options: {
    mount: { type: "boolean", default: false },
    "require-mount": { type: "boolean", default: false },
    marker: { type: "string" },
    "min-free": { type: "string" },
    "read-only": { type: "boolean", default: false },
  },
});

function fail(message) {
  console.error(`check_share: ${message}`);
  process.exit(1);
}

/** "5G" -> bytes. */
function parseSize(text) {
  const m = /^(\d+(?:\.\d+)?)\s*([KMGT]?)i?B?$/i.exec(text);
  if (m === null) fail(`--min-free must be a size like 500M or 5G, not ${JSON.stringify(text)}`);
  const exp = " KMGT".indexOf(m[2].toUpperCase() || " ");
  return Math.floor(Number(m[1]) * 1024 ** exp);
}

/** A mount point lives on another device than its parent (or is the root). */
function isMountPoint(dir) {
  const st = fs.statSync(dir);
  const parent = fs.statSync(path.dirname(dir));
  return st.dev !== parent.dev || st.ino === parent.ino;
}

function human(bytes) {
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  while (bytes >= 1024 && i < units.length - 1) {
    bytes /= 1024;
    i++;
  }
  return `${bytes.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}

if (positionals.length !== 1) fail("usage: check_share.mjs DIR [--mount] [--marker NAME] ...");
const dir = path.resolve(positionals[0]);
const minFree = opt["min-free"] === undefined ? 0 : parseSize(opt["min-free"]);

if (!fs.existsSync(dir)) fail(`${dir} does not exist`);
if (!fs.statSync(dir).isDirectory()) fail(`${dir} is not a directory`);

if ((opt.mount || opt["require-mount"]) && !isMountPoint(dir)) {
  if (!opt.mount) fail(`${dir} is not mounted`);
  const r = await $`mount ${dir}`.nothrow().quiet();
  if (r.exitCode !== 0) {
    fail(`${dir} is not mounted and 'mount ${dir}' failed: ${r.stderr.trim().split("\n")[0]}`);
  }
  if (!isMountPoint(dir)) fail(`${dir} is still not a mount point after 'mount ${dir}'`);
  console.log(`check_share: mounted ${dir}`);
}

if (opt.marker !== undefined && !fs.existsSync(path.join(dir, opt.marker))) {
  fail(`${dir} has no ${opt.marker}: the share is not the one expected, or is not mounted`);
}

if (!opt["read-only"]) {
  const probe = path.join(dir, `.cncop-probe-${process.pid}`);
  try {
    fs.writeFileSync(probe, "cncop");
    fs.rmSync(probe);
  } catch (err) {
    fail(`${dir} is not writable (${err.code ?? err.message})`);
  }
}

const st = fs.statfsSync(dir);
const free = Number(st.bavail) * Number(st.bsize);
if (free < minFree) fail(`${dir} has ${human(free)} free, less than ${human(minFree)}`);

const job = process.env.CNCOP_JOB_TITLE ? ` for job ${process.env.CNCOP_JOB_TITLE}` : "";
console.log(`check_share: ${dir} is ready (${human(free)} free)${job}`);

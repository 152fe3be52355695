#!/usr/bin/env node
// Benchmarks of the native core against its peers (Debian packages) and its portable twin.
// Never part of the test suite. Needs: linux-source-6.1, fd-find, rdiff, xdelta3, zstd, and
// network access to the npm registry for two typescript tarballs.
//
//   npm run build:native && node_modules/.bin/node bench/native.mjs [--write] [--synthetic-mb 512] [--keep]
//
// --write replaces the "## Native core" section of bench/RESULTS.md with this run's table.
import { $, fs, os, path } from "zx";
import { randomFillSync } from "node:crypto";
import { loadAddonCore, loadPortableCore, nativeStatus } from "../src/native/mod.ts";
import { arg, args, repo } from "./_common.mjs";
import { writeResultsSection } from "./_results.mjs";

const WRITE = args.includes("--write");
const SYN_MB = Number(arg("--synthetic-mb", "512"));
const RUNS = Number(arg("--runs", "3"));
const work = arg("--dir", path.join(os.tmpdir(), "cncop-bench-native"));
await fs.mkdirp(work);

const native = loadAddonCore();
if (!native) {
  console.error(`native addon not loaded: ${nativeStatus().reason}`);
  process.exit(1);
}
const portable = await loadPortableCore();

const rows = [];
const row = (what, cncop, peer, ratio, target, note = "") => {
  rows.push({ what, cncop, peer, ratio, target, note });
  console.log(`${what}: ${cncop} | ${peer} | ${ratio} | ${target} ${note}`);
};
const secs = (ms) => `${(ms / 1000).toFixed(3)} s`;
const mb = (n) => `${(n / 1e6).toFixed(2)} MB`;
const kb = (n) => `${(n / 1e3).toFixed(1)} KB`;
const x = (r) => `${r.toFixed(2)}x`;

/** Best of RUNS wall times (ms) of an async function. */
async function best(fn, runs = RUNS) {
  let min = Infinity;
  for (let i = 0; i < runs; i++) {
    const t = performance.now();
    await fn();
    min = Math.min(min, performance.now() - t);
  }
  return min;
}
const sh = (cmd) => async () => {
  await $`bash -c ${cmd}`;
};
async function zsize(file) {
  return Number((await $`zstd -19 -q -c ${file} | wc -c`).stdout.trim());
}

// ---- machine
const cpu = (await fs.readFile("/proc/cpuinfo", "utf8")).match(/model name\s*:\s*(.*)/)?.[1] ??
  os.cpus()[0]?.model;
const machine =
  `${cpu}, ${os.cpus().length} cores, ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB RAM, ` +
  `${os.type()} ${os.release()}, Node ${process.version}, ${
    new Date().toISOString().slice(0, 10)
  }, ` +
  `load average at start ${os.loadavg()[0].toFixed(1)}`;
console.log(machine);

// ---- memory bandwidth and hashing
{
  const size = 1 << 30;
  const a = Buffer.allocUnsafe(size);
  randomFillSync(a.subarray(0, 64 << 20));
  for (let off = 64 << 20; off < size; off += 64 << 20) a.copy(a, off, 0, 64 << 20);
  const b = Buffer.alloc(size); // zero-filled: pages faulted in before timing
  const copyMs = await best(() => a.copy(b));
  const bw = size / (copyMs / 1000);
  const b3 = await best(() => native.blake3(a));
  const xx = await best(() => native.xxh3(a));
  const f = path.join(work, "hash.bin");
  await fs.writeFile(f, a);
  const b3f = await best(() => native.blake3File(f));
  const pb3 = await best(() => portable.blake3(a), 1);
  const gbs = (ms) => size / (ms / 1000) / 1e9;
  const bwg = bw / 1e9;
  row("memory copy, 1 GiB Buffer.copy (bandwidth reference)", `${bwg.toFixed(2)} GB/s`, "", "", "");
  row(
    "BLAKE3, 1 GiB buffer",
    `${gbs(b3).toFixed(2)} GB/s`,
    `memcpy ${bwg.toFixed(2)} GB/s`,
    x(gbs(b3) / bwg),
    ">= 0.5x",
    gbs(b3) / bwg >= 0.5 ? "met" : "MISSED",
  );
  row(
    "xxh3-128, 1 GiB buffer",
    `${gbs(xx).toFixed(2)} GB/s`,
    `memcpy ${bwg.toFixed(2)} GB/s`,
    x(gbs(xx) / bwg),
    ">= 0.5x",
    gbs(xx) / bwg >= 0.5 ? "met" : "MISSED",
  );
  row(
    "BLAKE3 file (page cache), 1 GiB",
    `${gbs(b3f).toFixed(2)} GB/s`,
    `memcpy ${bwg.toFixed(2)} GB/s`,
    x(gbs(b3f) / bwg),
    ">= 0.5x",
    gbs(b3f) / bwg >= 0.5 ? "met" : "MISSED",
  );
  row(
    "BLAKE3 native vs portable (hash-wasm)",
    `${gbs(b3).toFixed(2)} GB/s`,
    `${gbs(pb3).toFixed(2)} GB/s`,
    x(pb3 / b3),
    "",
    "",
  );
  await fs.rm(f);
}

// ---- walk
const tarball = "/usr/src/linux-source-6.1.tar.xz";
const tree = path.join(work, "linux");
if (await fs.pathExists(tarball)) {
  if (!(await fs.pathExists(tree))) {
    await fs.mkdirp(tree);
    console.log("unpacking linux-source-6.1 ...");
    await $`tar -xJf ${tarball} -C ${tree}`;
  }
  const count = async (core) => {
    let n = 0;
    for await (const b of core.walk(tree, { followLinks: false })) n += b.length;
    return n;
  };
  const files = await count(native); // warms the cache
  const findMs = await best(sh(`find ${tree} -printf '%p %s %T@ %C@ %i %m\\n' > /dev/null`));
  const fdMs = (await $`which fdfind`.nothrow()).exitCode === 0
    ? await best(sh(`fdfind -u . ${tree} > /dev/null`))
    : NaN;
  const natMs = await best(() => count(native));
  const porMs = await best(() => count(portable));
  row(
    `walk, linux-source-6.1 (${files} entries) vs find -printf`,
    secs(natMs),
    secs(findMs),
    x(findMs / natMs),
    ">= 1.5x",
    findMs / natMs >= 1.5 ? "met" : "MISSED",
  );
  row(
    "walk vs fd -u",
    secs(natMs),
    secs(fdMs),
    x(fdMs / natMs),
    ">= 0.5x (within 2x)",
    fdMs / natMs >= 0.5 ? "met" : "MISSED",
  );
  row(
    "walk native vs portable",
    secs(natMs),
    secs(porMs),
    x(porMs / natMs),
    ">= 5x",
    porMs / natMs >= 5 ? "met" : "MISSED",
  );
} else {
  console.log(`skipping walk: ${tarball} missing (apt-get install linux-source-6.1)`);
}

// ---- deltas
async function deltaPair(label, base, next) {
  const p = (f) => path.join(work, f);
  const natMs = await best(async () => {
    await native.signature(base, p("sig.n"));
    await native.delta(p("sig.n"), next, p("delta.n"));
  });
  const porMs = await best(async () => {
    await portable.signature(base, p("sig.p"));
    await portable.delta(p("sig.p"), next, p("delta.p"));
  }, 1);
  const rdMs = await best(
    sh(
      `rdiff -f signature ${base} ${p("sig.r")} && rdiff -f delta ${p("sig.r")} ${next} ${
        p("delta.r")
      }`,
    ),
  );
  const xdMs = await best(sh(`xdelta3 -f -e -B 1073741824 -s ${base} ${next} ${p("delta.x")}`));
  const st = await native.delta(p("sig.n"), next, p("delta.n"));
  await native.patch(base, p("delta.n"), p("out.n"), st.newBlake3); // sanity
  const [zn, zr, zx] = [
    await zsize(p("delta.n")),
    await zsize(p("delta.r")),
    await zsize(p("delta.x")),
  ];
  const [rn, rr, rx] = [
    st.deltaSize,
    (await fs.stat(p("delta.r"))).size,
    (await fs.stat(p("delta.x"))).size,
  ];
  row(
    `${label}: delta size, zstd -19 (raw)`,
    `${kb(zn)} (${kb(rn)})`,
    `rdiff ${kb(zr)} (${kb(rr)})`,
    x(zn / zr),
    "<= 0.25x",
    zn / zr <= 0.25 ? "met" : "MISSED",
  );
  row(
    `${label}: delta size vs xdelta3, zstd -19 (raw)`,
    `${kb(zn)}`,
    `xdelta3 ${kb(zx)} (${kb(rx)})`,
    x(zn / zx),
    "",
    "",
  );
  row(
    `${label}: signature + delta time`,
    secs(natMs),
    `rdiff ${secs(rdMs)}`,
    x(rdMs / natMs),
    ">= 2x faster",
    rdMs / natMs >= 2 ? "met" : "MISSED",
  );
  row(
    `${label}: vs xdelta3 -e time`,
    secs(natMs),
    `xdelta3 ${secs(xdMs)}`,
    x(xdMs / natMs),
    "",
    "",
  );
  row(
    `${label}: native vs portable`,
    secs(natMs),
    `portable ${secs(porMs)}`,
    x(porMs / natMs),
    ">= 5x",
    porMs / natMs >= 5 ? "met" : "MISSED",
  );
  for (
    const f of ["sig.n", "sig.p", "sig.r", "delta.n", "delta.p", "delta.r", "delta.x", "out.n"]
  ) await fs.rm(p(f), { force: true });
}

{
  const ts = path.join(work, "ts");
  await fs.mkdirp(ts);
  for (const v of ["5.8.2", "5.8.3"]) {
    const dir = path.join(ts, v);
    if (!(await fs.pathExists(path.join(dir, "package/lib/typescript.js")))) {
      await fs.mkdirp(dir);
      const out = (await $`cd ${dir} && npm pack --silent typescript@${v}`.nothrow()).stdout.trim();
      if (out) await $`tar -xzf ${path.join(dir, out)} -C ${dir}`;
    }
  }
  const a = path.join(ts, "5.8.2/package/lib/typescript.js");
  const b = path.join(ts, "5.8.3/package/lib/typescript.js");
  if ((await fs.pathExists(a)) && (await fs.pathExists(b))) {
    await deltaPair(`typescript.js 5.8.2 -> 5.8.3 (${mb((await fs.stat(b)).size)})`, a, b);
  } else {
    console.log("skipping typescript.js pair: npm pack failed");
  }
}

{
  const base = path.join(work, "syn.base");
  const next = path.join(work, "syn.new");
  const size = SYN_MB << 20;
  const fd = await fs.open(base, "w");
  const chunk = Buffer.allocUnsafe(16 << 20);
  for (let off = 0; off < size; off += chunk.length) {
    randomFillSync(chunk);
    await fs.write(fd, chunk, 0, Math.min(chunk.length, size - off));
  }
  await fs.close(fd);
  await fs.copyFile(base, next);
  const nfd = await fs.open(next, "r+");
  let seed = 12345;
  for (let i = 0; i < 200; i++) {
    seed = (seed * 1103515245 + 12345) >>> 0;
    const off = Math.floor((seed / 2 ** 32) * (size - 50));
    const edit = Buffer.alloc(50);
    randomFillSync(edit);
    await fs.write(nfd, edit, 0, 50, off);
  }
  await fs.close(nfd);
  await deltaPair(`random ${SYN_MB} MiB, 200 x 50-byte edits`, base, next);
  await fs.rm(base);
  await fs.rm(next);
}

// ---- table
const table = [
  "## Native core",
  "",
  `Machine: ${machine}.`,
  "Produced by `node bench/native.mjs --write` (best of " + RUNS + " runs; portable runs once).",
  "",
  "| measure | cncop native | peer | ratio | target | |",
  "| --- | --- | --- | --- | --- | --- |",
  ...rows.map((r) =>
    `| ${r.what} | ${r.cncop} | ${r.peer} | ${r.ratio} | ${r.target} | ${r.note} |`
  ),
  "",
].join("\n");
console.log("\n" + table);
if (WRITE) console.log(`wrote ${writeResultsSection(repo, "## Native core", table)}`);
if (!args.includes("--keep")) await fs.rm(path.join(work, "hash.bin"), { force: true });

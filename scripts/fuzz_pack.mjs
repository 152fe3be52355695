#!/usr/bin/env node
// Fuzzes the pack reader (src/ccs/pack_reader.ts) for a bounded time: mutated packs must be
// rejected with PackRejectedError - no other exception, no hang, bounded memory.
//
//   node scripts/fuzz_pack.mjs --seconds 20 [--seed 1234]
//
// Exit 0 when clean; 1 with the failing input saved under build/fuzz/ otherwise.
import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PackRejectedError } from "../src/core/errors.ts";
import { readPackEntries } from "../src/ccs/pack_reader.ts";
import {
  baseHeader,
  packAdd,
  PackBuilder,
  packDelete,
  packMove,
  packUpdate,
} from "../src/ccs/pack_writer.ts";
import { native } from "../src/native/mod.ts";

const args = process.argv.slice(2);
const opt = (name, def) => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : def;
};
const seconds = opt("--seconds", 20);
let seed = opt("--seed", Date.now() % 1e9) >>> 0;
const startSeed = seed;
// xorshift32: reproducible with --seed.
const rnd = () => {
  seed ^= seed << 13;
  seed >>>= 0;
  seed ^= seed >>> 17;
  seed ^= seed << 5;
  seed >>>= 0;
  return seed / 4294967296;
};
const ri = (n) => Math.floor(rnd() * n);

const dir = mkdtempSync(join(tmpdir(), "cncop-fuzz-"));
const seeds = [];
{
  const text = join(dir, "text");
  writeFileSync(text, "hello world\n".repeat(3000));
  const bin = join(dir, "bin");
  writeFileSync(bin, Buffer.from(Array.from({ length: 70_000 }, (_, i) => (i * 7919) & 255)));
  const empty = join(dir, "empty");
  writeFileSync(empty, "");
  seeds.push(await packAdd(join(dir, "s1"), { job: "7", path: "a/text", source: text }));
  seeds.push(
    await packAdd(join(dir, "s2"), { job: "7", path: "bin", source: bin, compression: "none" }),
  );
  seeds.push(await packAdd(join(dir, "s3"), { job: "7", path: "e", source: empty }));
  seeds.push(await packMove(join(dir, "s4"), { job: "7", path: "a", newPath: "b", folder: true }));
  seeds.push(await packDelete(join(dir, "s5"), { job: "7", path: "x/y" }));
  seeds.push(
    await packUpdate(join(dir, "s6"), {
      job: "7",
      path: "bin",
      deltaPath: text,
      base: 1,
      size: 10,
      hash: "0".repeat(64),
      mtimeNs: 1,
      mode: 420,
    }),
  );
  // A pack of many entries: small adds (compressed and raw), a move and a delete.
  const b = await PackBuilder.create(join(dir, "s7"));
  for (
    const [i, body] of [
      Buffer.from("small text\n".repeat(50)),
      Buffer.from(Array.from({ length: 3000 }, (_, k) => (k * 7919) & 255)),
      Buffer.alloc(0),
      Buffer.from("x"),
    ].entries()
  ) {
    const h = baseHeader("add", { job: "7", path: `m/f${i}` });
    Object.assign(h, { size: body.length, bodySize: body.length, hash: native.blake3(body) });
    await b.add(h, body);
  }
  await b.add(Object.assign(baseHeader("move", { job: "7", path: "m" }), { newPath: "n" }));
  await b.add(baseHeader("delete", { job: "7", path: "old" }));
  seeds.push(await b.finish());
}
const seedBytes = seeds.map((s) => readFileSync(s.path));

function resum(buf) {
  // Recompute the trailer so mutations reach the header checks and the decompressor.
  if (buf.length < 32) return buf;
  const body = buf.subarray(0, buf.length - 32);
  return Buffer.concat([body, createHash("sha256").update(body).digest()]);
}

const hostile = [
  ["path", "../x"],
  ["path", "/etc/passwd"],
  ["path", "a\u0000b"],
  ["path", "C:/x"],
  ["bodySize", 1e15],
  ["bodySize", -1],
  ["size", 2 ** 60],
  ["kind", "exec"],
  ["format", 2],
  ["newPath", "../../up"],
  ["mtimeNs", "1e99"],
  ["hash", "zz"],
  ["compression", "gzip"],
  ["base", 0],
  ["folder", "yes"],
  ["job", "../7"],
  ["bodySize", 1],
  ["bodySize", 0],
];

function mutate(src) {
  let b = Buffer.from(src);
  const op = ri(8);
  if (op === 0) { // bit flips
    for (let k = 1 + ri(4); k > 0; k--) b[ri(b.length)] ^= 1 << ri(8);
  } else if (op === 1) { // truncate
    b = b.subarray(0, ri(b.length));
  } else if (op === 2) { // insert random bytes
    const at = ri(b.length);
    const ins = Buffer.from(Array.from({ length: 1 + ri(64) }, () => ri(256)));
    b = Buffer.concat([b.subarray(0, at), ins, b.subarray(at)]);
  } else if (op === 3) { // delete a range
    const at = ri(b.length);
    b = Buffer.concat([b.subarray(0, at), b.subarray(at + 1 + ri(64))]);
  } else if (op === 4 || op === 5) { // hostile header field, valid checksum
    const hlen = b.readUInt32BE(8);
    const h = JSON.parse(b.subarray(12, 12 + hlen).toString());
    const [k, v] = hostile[ri(hostile.length)];
    h[k] = v;
    const nh = Buffer.from(JSON.stringify(h));
    const nl = Buffer.alloc(4);
    nl.writeUInt32BE(nh.length);
    b = resum(Buffer.concat([b.subarray(0, 8), nl, nh, b.subarray(12 + hlen)]));
  } else if (op === 6) { // body flips with a valid checksum (reaches zstd)
    const hlen = b.readUInt32BE(8);
    const start = 12 + hlen;
    if (b.length - 32 > start) {
      for (let k = 1 + ri(8); k > 0; k--) b[start + ri(b.length - 32 - start)] ^= 1 << ri(8);
    }
    b = resum(b);
  } else { // huge frame or header length
    const at = ri(2) ? 8 : 12 + b.readUInt32BE(8);
    if (at + 4 <= b.length) {
      b.writeUInt32BE([0xffffffff, 0x7fffffff, 4 * 1024 * 1024 + 1, ri(2 ** 32)][ri(4)] >>> 0, at);
    }
    b = resum(b);
  }
  return b;
}

async function* one(buf) {
  // Feed in odd-sized pieces to exercise the reader's buffering.
  for (let i = 0; i < buf.length;) {
    const n = 1 + ri(9000);
    yield buf.subarray(i, i + n);
    i += n;
  }
}

const end = Date.now() + seconds * 1000;
let cases = 0;
let accepted = 0;
let maxRss = 0;
const body = join(dir, "body");
let failure;
while (Date.now() < end && !failure) {
  const input = mutate(seedBytes[ri(seedBytes.length)]);
  cases++;
  let timer;
  try {
    await Promise.race([
      readPackEntries(one(input), {
        bodyTo: (_h, i) => `${body}-${i % 8}`,
        maxBodySize: 64 * 1024 * 1024,
        // Half the cases verify small bodies in deferred native batches, as the network does.
        frames: cases % 2 ? { wants: () => true, take: () => {} } : undefined,
      }),
      new Promise((
        _,
        rej,
      ) => (timer = setTimeout(() => rej(new Error("HANG: over 10 s")), 10_000))),
    ]);
    accepted++; // a mutation can be harmless (e.g. a flip in the created date)
  } catch (err) {
    if (!(err instanceof PackRejectedError)) failure = { err, input };
  } finally {
    clearTimeout(timer);
  }
  if (cases % 200 === 0) {
    const rss = process.memoryUsage().rss;
    maxRss = Math.max(maxRss, rss);
    if (rss > 768 * 1024 * 1024) failure = { err: new Error(`memory: rss ${rss} bytes`), input };
  }
}
rmSync(dir, { recursive: true, force: true });
const summary =
  `fuzz_pack: ${cases} cases in ${seconds} s (seed ${startSeed}), ${accepted} accepted, ` +
  `max rss ${Math.round(maxRss / 1048576)} MiB`;
if (failure) {
  mkdirSync("build/fuzz", { recursive: true });
  const file = `build/fuzz/pack-${startSeed}-${cases}.bin`;
  writeFileSync(file, failure.input);
  console.error(`${summary}\nFAIL: ${failure.err?.stack ?? failure.err}\ninput saved to ${file}`);
  process.exit(1);
}
console.log(`${summary}, no crash, no hang`);

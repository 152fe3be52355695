import assert from "node:assert/strict";
import { mkdirSync, readdirSync, readFileSync, statSync, unlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { openLog } from "../../src/core/log.ts";
import { packPlanned } from "../../src/ccs/pack.ts";
import { readPackEntries } from "../../src/ccs/pack_reader.ts";
import { PackBuilder } from "../../src/ccs/pack_writer.ts";
import { openWorkDb } from "../../src/ccs/work_queue.ts";
import { testPackContext } from "../helpers/packs.ts";
import { tempDir } from "../helpers/tmp.ts";

/** The ADD item a peek would plan for `path` under `root`, as it is now. */
function addOf(root: string, path: string) {
  const st = statSync(join(root, path), { bigint: true });
  return {
    kind: "ADD" as const,
    path,
    size: Number(st.size),
    mtimeNs: String(st.mtimeNs),
    mode: Number(st.mode) & 0o7777,
    ino: String(st.ino),
    dev: String(st.dev),
  };
}

test("the pack phase shares packs, re-reads a file that changed, reports one that vanished", async () => {
  const dir = tempDir();
  const root = join(dir, "src");
  const workDir = join(dir, "work");
  mkdirSync(join(root, "d"), { recursive: true });
  mkdirSync(workDir);
  const names = Array.from({ length: 300 }, (_, i) => `d/f${i}.txt`);
  for (const [i, n] of names.entries()) writeFileSync(join(root, n), `file ${i}\n`.repeat(i));
  writeFileSync(join(root, "big.bin"), Buffer.alloc(3 << 20, 7)); // a pack of its own
  writeFileSync(join(root, "bad\nname.txt"), "a newline in its name"); // legal on Linux
  const work = openWorkDb(join(workDir, "work.db"));
  const listed = [...names, "big.bin", "bad\nname.txt"].map((path) => addOf(root, path));
  work.tx(() => work.addItems(1, "s1", listed));
  // After the peek: one file vanishes, one changes size.
  unlinkSync(join(root, names[5]!));
  writeFileSync(join(root, names[7]!), "changed after the peek\n");
  const log = openLog({ dir: join(dir, "logs"), prefix: "NQ", style: "daily", program: "test" });
  const s = await packPlanned(testPackContext(work, workDir, root, log));
  log.close();
  assert.equal(s.missing, 1);
  assert.equal(s.changed, 0, "the changed file was read again, not left for the next run");
  assert.equal(s.failed, 1, "the name a pack cannot carry fails alone");
  assert.equal(s.adds, 300);
  assert.equal(s.packed, 300);
  assert.deepEqual(
    readdirSync(workDir).filter((f) => !/^J1-\d+\.(pack|sig)$/.test(f) && !f.startsWith("work.db")),
    [],
    "no temp file left",
  );
  assert.equal(s.packFiles, 2, "299 small files share one pack, the large file has its own");

  const ready = work.items(1, "ready");
  assert.equal(ready.length, 300);
  const packs = [...new Set(ready.map((i) => i.pack!))];
  const contents = new Map<string, Buffer>();
  for (const p of packs) {
    const bodies = new Map<number, string>();
    const headers = await readPackEntries(p, {
      bodyTo: (_h, i) => {
        const f = `${p}.${i}`;
        bodies.set(i, f);
        return f;
      },
    });
    for (const [i, h] of headers.entries()) contents.set(h.path, readFileSync(bodies.get(i)!));
  }
  assert.equal(contents.size, 300);
  assert.equal(contents.get(names[7]!)!.toString(), "changed after the peek\n");
  assert.equal(contents.get(names[9]!)!.toString(), "file 9\n".repeat(9));
  assert.ok(!contents.has(names[5]!));
  assert.equal(ready.find((i) => i.path === names[7])!.size, 23, "the item has the new size");
  const logText = readFileSync(log.path, "utf8");
  assert.match(logText, /PACK-MISSING d\/f5\.txt/);
  assert.match(logText, /PACK-FAILED bad/);
  work.close();
});

test("full packs are finished while the next fills: all are ready when the phase returns", async () => {
  const dir = tempDir();
  const root = join(dir, "src");
  const workDir = join(dir, "work");
  mkdirSync(root, { recursive: true });
  mkdirSync(workDir);
  // 40 files of 900 KB (each shares packs): 36 MB of content, packs close at 16 MB.
  const listed = Array.from({ length: 40 }, (_, i) => {
    const path = `f${String(i).padStart(2, "0")}.bin`;
    writeFileSync(join(root, path), Buffer.alloc(900_000, i));
    return addOf(root, path);
  });
  const work = openWorkDb(join(workDir, "work.db"));
  work.tx(() => work.addItems(1, "s1", listed));
  const log = openLog({ dir: join(dir, "logs"), prefix: "NQ", style: "daily", program: "test" });
  // A slow disk: the first pack takes longest to finish (fsync, rename), after the others.
  const finish = PackBuilder.prototype.finish;
  let calls = 0;
  PackBuilder.prototype.finish = async function () {
    await new Promise((r) => setTimeout(r, calls++ === 0 ? 500 : 0));
    return await finish.call(this);
  };
  let s;
  try {
    s = await packPlanned(testPackContext(work, workDir, root, log));
  } finally {
    PackBuilder.prototype.finish = finish;
  }
  log.close();
  assert.equal(s.packFiles, 3, "16 MB, 16 MB and the rest");
  const ready = work.items(1, "ready");
  assert.equal(ready.length, 40, "every item is ready once the phase has returned");
  const packs = [...new Set(ready.map((i) => i.pack!))];
  assert.equal(packs.length, 3);
  let entries = 0;
  for (const p of packs) entries += (await readPackEntries(p)).length;
  assert.equal(entries, 40);
  assert.deepEqual(
    readdirSync(workDir).filter((f) => !/^J1-\d+\.pack$/.test(f) && !f.startsWith("work.db")),
    [],
    "no temp file left",
  );
  work.close();
});

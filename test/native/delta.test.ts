import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { CncopError } from "../../src/core/errors.ts";
import { cores, randomBytes, scratch } from "./_helpers.ts";

for (const core of cores) {
  const name = core.implementation;

  test(`patch() [${name}] rebuilds the new file from base + delta`, async () => {
    const s = scratch("rt");
    try {
      const base = randomBytes(200_000, 1);
      const next = Buffer.concat([
        base.subarray(0, 70_000),
        Buffer.from("edit"),
        base.subarray(70_100),
      ]);
      const [b, n, sig, d, out] = ["base", "new", "sig", "delta", "out"].map((f) => join(s.dir, f));
      writeFileSync(b!, base);
      writeFileSync(n!, next);
      await core.signature(b!, sig!);
      const st = await core.delta(sig!, n!, d!);
      assert.equal(st.newSize, next.length);
      assert.equal(st.newBlake3, core.blake3(next));
      assert.equal(st.copiedBytes + st.literalBytes, next.length);
      assert.ok(st.literalBytes < 2_000, `literal ${st.literalBytes}`);
      assert.equal(st.deltaSize, readFileSync(d!).length);
      await core.patch(b!, d!, out!, st.newBlake3);
      assert.deepEqual(readFileSync(out!), next);
    } finally {
      s.done();
    }
  });

  test(`patch() [${name}] fails loudly on a hash mismatch and leaves no output`, async () => {
    const s = scratch("mm");
    try {
      const [b, n, sig, d, out] = ["base", "new", "sig", "delta", "out"].map((f) => join(s.dir, f));
      writeFileSync(b!, randomBytes(10_000, 2));
      writeFileSync(n!, randomBytes(10_000, 3));
      await core.signature(b!, sig!);
      await core.delta(sig!, n!, d!);
      await assert.rejects(
        core.patch(b!, d!, out!, "0".repeat(64)),
        (e: Error) => e instanceof CncopError && /does not match expected/.test(e.message),
      );
      assert.equal(existsSync(out!), false);
      assert.deepEqual(readdirSync(s.dir).sort(), ["base", "delta", "new", "sig"]);
    } finally {
      s.done();
    }
  });

  test(`patch() [${name}] rejects a COPY past the end of the base`, async () => {
    const s = scratch("past");
    try {
      const [b, d, out] = ["base", "delta", "out"].map((f) => join(s.dir, f));
      writeFileSync(b!, randomBytes(1000, 4));
      const h = Buffer.alloc(20);
      h.write("CNDL", 0, "latin1");
      h[4] = 1;
      h.writeUInt32LE(512, 8);
      h.writeBigUInt64LE(1000n, 12);
      const copy = Buffer.alloc(17);
      copy[0] = 1;
      copy.writeBigUInt64LE(990n, 1);
      copy.writeBigUInt64LE(20n, 9);
      writeFileSync(d!, Buffer.concat([h, copy]));
      await assert.rejects(core.patch(b!, d!, out!, "0".repeat(64)), /COPY past the end/);
      assert.equal(existsSync(out!), false);
    } finally {
      s.done();
    }
  });

  test(`patch() [${name}] rejects malformed deltas`, async () => {
    const s = scratch("bad");
    try {
      const [b, n, sig, d, out] = ["base", "new", "sig", "delta", "out"].map((f) => join(s.dir, f));
      const base = randomBytes(5000, 5);
      writeFileSync(b!, base);
      writeFileSync(
        n!,
        Buffer.concat([base.subarray(0, 3000), randomBytes(100, 6), base.subarray(3000)]),
      );
      await core.signature(b!, sig!);
      const st = await core.delta(sig!, n!, d!);
      const good = readFileSync(d!);
      const cases: [string, Buffer, RegExp][] = [
        ["bad magic", Buffer.concat([Buffer.from("XXXX"), good.subarray(4)]), /bad magic/],
        ["truncated", good.subarray(0, good.length - 10), /truncated/],
        ["trailing data", Buffer.concat([good, Buffer.from([0])]), /after END/],
        [
          "unknown op",
          Buffer.concat([good.subarray(0, 20), Buffer.from([9])]),
          /unknown instruction/,
        ],
      ];
      for (const [what, bytes, re] of cases) {
        writeFileSync(d!, bytes);
        await assert.rejects(core.patch(b!, d!, out!, st.newBlake3), re, what);
        assert.equal(existsSync(out!), false, what);
      }
      // A different base of the same size: the recorded hash catches it.
      writeFileSync(d!, good);
      writeFileSync(b!, randomBytes(5000, 99));
      await assert.rejects(core.patch(b!, d!, out!, st.newBlake3), /does not match/);
      writeFileSync(b!, randomBytes(4000, 5));
      await assert.rejects(core.patch(b!, d!, out!, st.newBlake3), /delta was made against 5000/);
      assert.equal(existsSync(out!), false);
    } finally {
      s.done();
    }
  });

  test(`delta() [${name}] rejects a file that is not a signature`, async () => {
    const s = scratch("badsig");
    try {
      const [sig, n, d] = ["sig", "new", "delta"].map((f) => join(s.dir, f));
      writeFileSync(sig!, "not a signature at all");
      writeFileSync(n!, "x");
      await assert.rejects(core.delta(sig!, n!, d!), /not a cncop signature/);
      assert.equal(existsSync(d!), false);
      await assert.rejects(core.signature(n!, sig!, 3), /block size 3 out of range/);
    } finally {
      s.done();
    }
  });
}

import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { CncopError } from "../../src/core/errors.ts";
import { cores, randomBytes, scratch } from "./_helpers.ts";

for (const core of cores) {
  const name = core.implementation;

  test(`xxh3() / blake3() [${name}] match the reference vectors`, () => {
    const empty = new Uint8Array(0);
    assert.equal(core.xxh3(empty), "99aa06d3014798d86001c324468d497f");
    assert.equal(core.xxh3(Buffer.from("abc")), "06b05ab6733a618578af5f94892f3950");
    assert.equal(
      core.blake3(empty),
      "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262",
    );
    assert.equal(
      core.blake3(new TextEncoder().encode("abc")),
      "6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85",
    );
  });

  test(`blake3File() [${name}] runs off the JS thread: the event loop turns meanwhile`, async () => {
    const s = scratch("thread");
    try {
      const f = join(s.dir, "big");
      const data = randomBytes(32 << 20, 7);
      writeFileSync(f, data);
      let turns = 0;
      let done = false;
      const spin = () => {
        if (done) return;
        turns++;
        setImmediate(spin);
      };
      setImmediate(spin);
      const h = await core.blake3File(f);
      done = true;
      assert.equal(h, core.blake3(data));
      assert.ok(turns > 0, "the event loop did not turn during blake3File()");
      const missing = join(s.dir, "missing");
      await assert.rejects(
        core.blake3File(missing),
        (e) => e instanceof CncopError && /ENOENT/.test(e.message),
      );
      await assert.rejects(
        core.xxh3File(missing),
        (e) => e instanceof CncopError && /ENOENT/.test(e.message),
      );
      await assert.rejects(core.signature(missing, join(s.dir, "sig")), CncopError);
    } finally {
      s.done();
    }
  });
}

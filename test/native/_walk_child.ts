// Child for walk.test.ts: walks argv[2] with both cores (run as an unprivileged user) and
// prints the listings as JSON.
import { loadAddonCore, loadPortableCore } from "../../src/native/mod.ts";
import type { WalkEntry } from "../../src/native/mod.ts";

const root = process.argv[2]!;
const out: Record<string, unknown> = {};
for (const core of [loadAddonCore(), await loadPortableCore()]) {
  if (!core) continue;
  const all: WalkEntry[] = [];
  for await (const b of core.walk(root)) all.push(...b);
  out[core.implementation] = all.map((e) => ({ path: e.path, kind: e.kind, error: e.error }));
}
process.stdout.write(JSON.stringify(out));

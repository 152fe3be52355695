// Child for lock.test.ts: argv = impl (native|portable), lock path, wait (0|1).
// Prints "won" or "lost", holds the lock until stdin closes, then releases and exits.
import { loadAddonCore, loadPortableCore } from "../../src/native/mod.ts";

const [impl, path, wait] = process.argv.slice(2);
const core = impl === "native" ? loadAddonCore() : await loadPortableCore();
if (!core) throw new Error("native addon not loaded");
const lock = await core.lockFile(path!, wait === "1");
process.stdout.write(lock ? "won\n" : "lost\n");
process.stdin.resume();
process.stdin.on("end", () => {
  lock?.release();
  process.exit(0);
});

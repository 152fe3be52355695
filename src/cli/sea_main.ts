/**
 * The entry point of the single executable (`scripts/build_sea.mjs` bundles this file to
 * CommonJS, which is what a Node 24 SEA runs; `main.ts` keeps its top-level await for the
 * runtimes).
 *
 * The program name is the name the executable was started under: `process.argv0` keeps a
 * symlink's own name (`Bin/cncopagent -> cncop`), where `process.execPath` is resolved;
 * `CNCOP_ARGV0`, when a parent sets it, wins, and is removed so it does not reach the
 * program's own children. The embedded native addon is extracted (once per version) when the
 * native facade first loads (`src/native/load.ts` asks `src/native/sea_asset.ts`).
 *
 * @module
 */
import { dispatch } from "./dispatch.ts";

const fromEnv = process.env.CNCOP_ARGV0;
const name = fromEnv !== undefined && fromEnv !== ""
  ? fromEnv
  : process.argv0 !== ""
  ? process.argv0
  : process.execPath;
delete process.env.CNCOP_ARGV0;

// A SEA passes the executable as argv[1] too, so the arguments start at index 2.
dispatch(name, process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`cncop: internal error: ${String(err)}\n`);
    process.exitCode = 1;
  },
);

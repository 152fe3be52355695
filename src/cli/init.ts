/**
 * `cncop init [DIR]`: create or complete an application directory (idempotent).
 *
 * @module
 */
import { initHome } from "../core/app_dir.ts";
import { resolveHome } from "../core/home.ts";
import { newCommand, parseCommand } from "./command.ts";

/** Runs `cncop init`. */
export async function main(argv: string[]): Promise<number> {
  let dir: string | undefined;
  const cmd = newCommand("cncop init", "create or complete an application directory")
    .argument("[dir]", "the directory (default: CNCOP_HOME, else the executable's Bin/..)")
    .action((d: string | undefined) => {
      dir = d;
    });
  if (!(await parseCommand(cmd, argv))) return 0;
  const { paths, created } = initHome(dir ?? resolveHome());
  if (created.length === 0) process.stdout.write(`${paths.home} is complete; nothing to do\n`);
  else {
    process.stdout.write(`initialised ${paths.home}\n`);
    for (const c of created) process.stdout.write(`  created ${c}\n`);
  }
  return 0;
}

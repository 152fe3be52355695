/**
 * `cncop version`: version, platform, native core state, Node and SQLite versions.
 *
 * @module
 */
import { versionReport } from "../core/version_report.ts";
import { newCommand, parseCommand } from "./command.ts";

/** Runs `cncop version`. */
export async function main(argv: string[]): Promise<number> {
  const cmd = newCommand("cncop version", "print version, platform and runtime details")
    .option("--json", "as JSON");
  if (!(await parseCommand(cmd, argv))) return 0;
  const report = await versionReport();
  if (cmd.opts<{ json?: boolean }>().json) {
    process.stdout.write(JSON.stringify(report, null, 2) + "\n");
  } else {
    process.stdout.write(
      [
        `cncop ${report.version}`,
        `platform: ${report.platform}`,
        `native core: ${report.native}`,
        `runtime: ${report.runtime}`,
        `sqlite: ${report.sqlite}`,
      ].join("\n") + "\n",
    );
  }
  return 0;
}

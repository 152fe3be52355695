/**
 * `cncoprestore JOB [PATH] [--at TIME] [--to DIR] [--list] [--versions PATH] [--overwrite]`:
 * lists versions and restores files or trees from the cncop network, verified by hash.
 *
 * @module
 */
import { loadConfig } from "../core/config.ts";
import { UsageError } from "../core/errors.ts";
import { resolveHome } from "../core/home.ts";
import { clientFromConfig, NetworkClient } from "../network/client.ts";
import { restoreFiles } from "../network/restore.ts";
import { newCommand, parseCommand } from "./command.ts";

function parseTime(s: string): number {
  const t = /^\d{10,}$/.test(s) ? Number(s) : Date.parse(s.includes(" ") ? s.replace(" ", "T") : s);
  if (!Number.isFinite(t)) {
    throw new UsageError(
      `--at must be a date and time (2026-05-01T12:00) or epoch ms, not ${JSON.stringify(s)}`,
    );
  }
  return t;
}

function homeOrUndefined(): string | undefined {
  try {
    return resolveHome();
  } catch {
    return undefined;
  }
}

function human(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

/** Runs `cncoprestore`. */
export async function main(argv: string[]): Promise<number> {
  const cmd = newCommand("cncoprestore", "list versions and restore files from the cncop network")
    .argument("<job>", "job id")
    .argument("[path]", "file or folder to restore (default: the whole job)")
    .option("--at <time>", "as it was at this time (ISO date/time or epoch ms; default now)")
    .option("--to <dir>", "restore into this directory")
    .option("--list", "list the files (at --at) instead of restoring")
    .option("--versions <path>", "list every version of a path")
    .option("--overwrite", "replace files that exist in the destination")
    .option("--url <url>", "the network (default: cncop3.ini [network] url)")
    .option("--token <token>", "device token (default: cncop3.ini [network] token)")
    .option("--ca-file <file>", "PEM CA to trust (default: cncop3.ini [network] ca_file)")
    .option("-c, --config <file>", "another cncop3.ini")
    .option("-d, --debug", "debug output");
  if (!(await parseCommand(cmd, argv))) return 0;
  const [job, path] = cmd.processedArgs as [string, string | undefined];
  const o = cmd.opts<{
    at?: string;
    to?: string;
    list?: boolean;
    versions?: string;
    overwrite?: boolean;
    url?: string;
    token?: string;
    caFile?: string;
    config?: string;
  }>();
  const at = o.at === undefined ? undefined : parseTime(o.at);
  const client = o.url && o.token
    ? new NetworkClient({ url: o.url, token: o.token, ...(o.caFile ? { caFile: o.caFile } : {}) })
    : clientFromConfig(
      (() => {
        const c = loadConfig(o.config ? { configPath: o.config } : { home: homeOrUndefined() });
        return {
          network: {
            url: o.url ?? c.network.url,
            token: o.token ?? c.network.token,
            caFile: o.caFile ?? c.network.caFile,
          },
        };
      })(),
    );
  try {
    const out = process.stdout;
    if (o.versions !== undefined) {
      for (const v of await client.versions(job, o.versions)) {
        const until = v.ended === null
          ? "current"
          : `${v.deleted ? "deleted" : "replaced"} ${new Date(v.ended).toISOString()}`;
        out.write(
          `${v.version}\t${new Date(v.created).toISOString()}\t${v.size}\t${
            v.hash.slice(0, 16)
          }\t${until}\n`,
        );
      }
      return 0;
    }
    if (o.list) {
      for await (const f of client.peek(job, { prefix: path, at })) {
        out.write(
          `${(f.mode & 0o7777).toString(8).padStart(4, "0")}\t${f.size}\t${f.version}\t${f.path}\n`,
        );
      }
      return 0;
    }
    if (o.to === undefined) {
      throw new UsageError("give --to DIR to restore (or --list / --versions)");
    }
    const tty = process.stderr.isTTY === true;
    const started = Date.now();
    const r = await restoreFiles({
      client,
      job,
      path,
      at,
      to: o.to,
      overwrite: o.overwrite,
      onProgress: tty
        ? (p) => {
          const rate = p.bytes / Math.max(0.001, (Date.now() - started) / 1000);
          process.stderr.write(
            `\r${p.files}/${p.totalFiles} files, ${human(p.bytes)}/${human(p.totalBytes)}, ${
              human(rate)
            }/s   `,
          );
        }
        : undefined,
    });
    if (tty) process.stderr.write("\n");
    out.write(`restored ${r.files} files (${r.bytes} bytes) into ${o.to}\n`);
    if (r.existing.length > 0) {
      for (const p of r.existing.slice(0, 20)) {
        process.stderr.write(`cncoprestore: exists, kept: ${p}\n`);
      }
      process.stderr.write(
        `cncoprestore: ${r.existing.length} files exist in ${o.to} and were kept - give --overwrite to replace them\n`,
      );
      return 1;
    }
    return 0;
  } finally {
    client.close();
  }
}

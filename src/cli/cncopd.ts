/**
 * `cncopd`: the cncop network server and its admin commands.
 *
 *     cncopd serve [--listen 127.0.0.1:8443] [--data DIR] [--tls-cert F --tls-key F]
 *                  [--request-log PATH|-] [--request-log-days N] [--upload-expiry AGE]
 *     cncopd device add NAME | device list | device revoke NAME
 *     cncopd check | cncopd prune [--grace SECONDS] [--upload-expiry AGE]
 *
 * @module
 */
import { join } from "node:path";
import { resolveHome } from "../core/home.ts";
import { CncopError, UsageError } from "../core/errors.ts";
import { newToken, tokenHash } from "../network/auth.ts";
import { checkData } from "../network/check.ts";
import { openDataDir } from "../network/data_dir.ts";
import type { RequestLogTarget } from "../network/request_log.ts";
import { prune } from "../network/retention.ts";
import { startServer } from "../network/server.ts";
import { parseAge, sweepUploads } from "../network/upload_sweep.ts";

/** The shortest --upload-expiry: an upload idle between two chunks must never look abandoned. */
const MIN_UPLOAD_EXPIRY = 3600_000;
import { intOption, newCommand, parseCommand } from "./command.ts";

function dataDirOf(opt: string | undefined): string {
  return opt ?? process.env.CNCOPD_DATA ?? join(resolveHome(), "Network");
}

function parseListen(s: string): { host: string; port: number } {
  const m = /^(?:\[([0-9a-fA-F:]+)\]|([^:]+)):(\d{1,5})$/.exec(s);
  if (!m || Number(m[3]) > 65535) {
    throw new UsageError(`--listen must be HOST:PORT, not ${JSON.stringify(s)}`);
  }
  return { host: m[1] ?? m[2]!, port: Number(m[3]) };
}

function requestLogOf(opt: string | undefined, dataDir: string): RequestLogTarget {
  if (opt === undefined) return { kind: "daily", dir: join(dataDir, "logs") };
  if (opt === "-") return { kind: "off" };
  if (opt === "") throw new UsageError("--request-log needs a file name, or - for none");
  return { kind: "file", path: opt };
}

const ageHelp = "an age of at least 1h: 7d, 12h, 90m or plain seconds";
const expiryHelp = `remove uploads nothing was appended to for this long (${ageHelp})`;

/** Runs `cncopd`. */
export async function main(argv: string[]): Promise<number> {
  let run: (() => Promise<number>) | undefined;
  const dataOpt = "--data <dir>";
  const dataHelp = "the data directory (default: $CNCOPD_DATA, else CNCOP_HOME/Network)";
  const cmd = newCommand("cncopd", "the cncop network server (storage on a local directory)");

  cmd.command("serve").description("serve the /v1 API; initialises an empty data directory")
    .option("--listen <host:port>", "address to listen on", "127.0.0.1:8443")
    .option(dataOpt, dataHelp)
    .option("--tls-cert <file>", "PEM certificate: serve HTTPS")
    .option("--tls-key <file>", "PEM private key of --tls-cert")
    .option("--max-pack <bytes>", "largest pack file accepted", intOption("--max-pack"))
    .option("--rate <n>", "requests per second per device (default 5000)", intOption("--rate"))
    .option(
      "--request-log <path|->",
      "append one line per request (time, device, method, path, status, bytes in and out, ms) " +
        "to this file instead of DATA/logs/requests-YYYY-MM-DD.log; - for no request log",
    )
    .option(
      "--request-log-days <n>",
      "days of daily request logs kept (default 90; 0 keeps all)",
      intOption("--request-log-days"),
    )
    .option(
      "--upload-expiry <age>",
      `${expiryHelp} (default 7d); checked at start and hourly`,
      (v: string) => parseAge("--upload-expiry", v, MIN_UPLOAD_EXPIRY),
    )
    .action(
      (
        o: {
          listen: string;
          data?: string;
          tlsCert?: string;
          tlsKey?: string;
          maxPack?: number;
          rate?: number;
          requestLog?: string;
          requestLogDays?: number;
          uploadExpiry?: number;
        },
      ) => {
        run = async () => {
          if ((o.tlsCert === undefined) !== (o.tlsKey === undefined)) {
            throw new UsageError("--tls-cert and --tls-key go together");
          }
          const { host, port } = parseListen(o.listen);
          const dataDir = dataDirOf(o.data);
          const server = await startServer({
            dataDir,
            requestLog: requestLogOf(o.requestLog, dataDir),
            requestLogDays: o.requestLogDays,
            uploadExpiryMs: o.uploadExpiry,
            host,
            port,
            tlsCert: o.tlsCert,
            tlsKey: o.tlsKey,
            maxPackBytes: o.maxPack,
            rate: o.rate,
            burst: o.rate === undefined ? undefined : o.rate * 2,
          }).catch((err: unknown) => {
            throw new CncopError(`cannot start: ${(err as Error).message}`, { cause: err });
          });
          // Tests and supervisors read this line to learn the port.
          process.stdout.write(`cncopd listening on ${server.url}\n`);
          await new Promise<void>((resolve) => {
            const stop = () => resolve();
            process.once("SIGINT", stop);
            process.once("SIGTERM", stop);
          });
          await server.close();
          return 0;
        };
      },
    );

  const device = cmd.command("device").description("manage devices and their tokens");
  device.command("add").description("register a device and print its token (shown once)")
    .argument("<name>", "device name").option(dataOpt, dataHelp)
    .action((name: string, o: { data?: string }) => {
      run = async () => {
        if (!/^[A-Za-z0-9._-]{1,64}$/.test(name)) {
          throw new UsageError("a device name is 1-64 of A-Z a-z 0-9 . _ -");
        }
        const data = await openDataDir(dataDirOf(o.data));
        try {
          if (data.catalog.deviceByName(name)) {
            throw new CncopError(`device ${name} exists`, { hint: "pick another name" });
          }
          const token = newToken();
          data.catalog.addDevice(name, tokenHash(token));
          process.stdout.write(`${token}\n`);
          if (process.stderr.isTTY) {
            process.stderr.write(
              "Put this token in cncop3.ini [network] token; it is not shown again.\n",
            );
          }
          return 0;
        } finally {
          data.close();
        }
      };
    });
  device.command("list").description("list devices").option(dataOpt, dataHelp)
    .action((o: { data?: string }) => {
      run = async () => {
        const data = await openDataDir(dataDirOf(o.data));
        try {
          for (const d of data.catalog.listDevices()) {
            const state = d.revoked_at
              ? `revoked ${new Date(d.revoked_at).toISOString()}`
              : "active";
            process.stdout.write(`${d.name}\t${new Date(d.created_at).toISOString()}\t${state}\n`);
          }
          return 0;
        } finally {
          data.close();
        }
      };
    });
  device.command("revoke").description("revoke a device's token (its data stays)")
    .argument("<name>", "device name").option(dataOpt, dataHelp)
    .action((name: string, o: { data?: string }) => {
      run = async () => {
        const data = await openDataDir(dataDirOf(o.data));
        try {
          if (!data.catalog.revokeDevice(name)) {
            throw new CncopError(`no active device ${name}`, { hint: "run 'cncopd device list'" });
          }
          return 0;
        } finally {
          data.close();
        }
      };
    });

  cmd.command("check").description("verify every blob against its hash and the catalog")
    .option(dataOpt, dataHelp)
    .action((o: { data?: string }) => {
      run = async () => {
        const data = await openDataDir(dataDirOf(o.data));
        try {
          const r = await checkData(data);
          for (const p of r.problems) {
            process.stdout.write(`${p.problem}\tdevice ${p.device}\t${p.hash}\n`);
          }
          process.stdout.write(
            `${r.blobs} blobs, ${r.bytes} bytes, ${r.problems.length} problems\n`,
          );
          return r.problems.length === 0 ? 0 : 1;
        } finally {
          data.close();
        }
      };
    });

  cmd.command("prune")
    .description("remove expired versions, unreferenced blobs and abandoned uploads")
    .option(dataOpt, dataHelp)
    .option(
      "--grace <seconds>",
      "keep unreferenced blobs younger than this",
      intOption("--grace"),
      3600,
    )
    .option(
      "--upload-expiry <age>",
      `${expiryHelp} (default 7d)`,
      (v: string) => parseAge("--upload-expiry", v, MIN_UPLOAD_EXPIRY),
    )
    .action((o: { data?: string; grace: number; uploadExpiry?: number }) => {
      run = async () => {
        const data = await openDataDir(dataDirOf(o.data));
        try {
          const u = await sweepUploads(data.dir, data.catalog, { expiryMs: o.uploadExpiry });
          const r = await prune(data, { graceMs: o.grace * 1000 });
          process.stdout.write(
            `pruned ${r.versions} versions, ${r.blobs} blobs (${r.bytes} bytes), ` +
              `${r.packs} kept packs (${r.packBytes} bytes), ` +
              `${u.uploads} abandoned uploads and ${u.orphans} stray part files (${u.bytes} bytes)\n`,
          );
          return 0;
        } finally {
          data.close();
        }
      };
    });

  if (!(await parseCommand(cmd, argv))) return 0;
  if (!run) {
    throw new UsageError("give a command: serve, device, check or prune", {
      hint: "run 'cncopd --help'",
    });
  }
  return await run();
}

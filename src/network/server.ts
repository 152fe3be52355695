/**
 * The cncop network server (`cncopd serve`): HTTP/1.1, or HTTPS with a certificate, on
 * `node:http` / `node:https` directly.
 *
 * @module
 */
import { readFileSync } from "node:fs";
import http from "node:http";
import https from "node:https";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { CncopError, messageOf } from "../core/errors.ts";
import { Authenticator } from "./auth.ts";
import type { DeviceRow } from "./catalog.ts";
import { type DataDir, openDataDir } from "./data_dir.ts";
import { HttpError, sendJson } from "./http_util.ts";
import {
  DEFAULT_REQUEST_LOG_DAYS,
  removeOldRequestLogs,
  RequestLog,
  type RequestLogTarget,
  watchRequest,
} from "./request_log.ts";
import { route, type RouteContext } from "./routes.ts";
import { Uploads } from "./upload.ts";
import {
  DEFAULT_UPLOAD_EXPIRY_MS,
  sweepUploads,
  UPLOAD_SWEEP_INTERVAL_MS,
} from "./upload_sweep.ts";

/** Options of {@link startServer}. */
export interface ServerOptions {
  dataDir: string;
  /** @default "127.0.0.1" */
  host?: string;
  /** 0 picks a free port. @default 8443 */
  port?: number;
  tlsCert?: string;
  tlsKey?: string;
  /** Largest pack accepted. @default 64 GiB */
  maxPackBytes?: number;
  /** Largest upload chunk. @default 16 MiB */
  maxChunkBytes?: number;
  /** Requests per second per device, and burst. @default 200, 400 */
  rate?: number;
  burst?: number;
  /** Where to log problems. @default stderr */
  log?: (line: string) => void;
  /** The request log. @default daily files in `<dataDir>/logs/` */
  requestLog?: RequestLogTarget;
  /** Days of daily request logs kept (0: all). @default 90 */
  requestLogDays?: number;
  /** Age after which an untouched upload is removed. @default 7 days */
  uploadExpiryMs?: number;
  /** How often to look for expired uploads (also once at start). @default 1 hour */
  uploadSweepMs?: number;
}

/** The authenticator, remembering which device each request authenticated as (for the log). */
class NamingAuthenticator extends Authenticator {
  names = new WeakMap<http.IncomingMessage, string>();
  override authenticate(req: http.IncomingMessage): DeviceRow {
    const d = super.authenticate(req);
    this.names.set(req, d.name);
    return d;
  }
}

/** A running server. */
export interface RunningServer {
  url: string;
  port: number;
  data: DataDir;
  /** Removes expired uploads now (what the hourly sweep does). */
  sweepUploads(): ReturnType<typeof sweepUploads>;
  close(): Promise<void>;
}

/** Opens the data directory (initialising it when empty) and starts listening. */
export async function startServer(o: ServerOptions): Promise<RunningServer> {
  const log = o.log ?? ((l: string) => process.stderr.write(l + "\n"));
  const data = await openDataDir(o.dataDir, { cleanTmp: true });
  const maxPack = o.maxPackBytes ?? 64 * 1024 ** 3;
  const applyCtx = { catalog: data.catalog, blobs: data.blobs, maxBodySize: maxPack * 64 };
  const auth = new NamingAuthenticator(data.catalog, {
    rate: o.rate ?? 5000,
    burst: o.burst ?? 10000,
  });
  const uploads = new Uploads(applyCtx, o.dataDir, {
    maxPack,
    maxChunk: o.maxChunkBytes ?? 16 * 1024 * 1024,
  });
  const ctx: RouteContext = { catalog: data.catalog, blobs: data.blobs, auth, uploads };
  const logTarget: RequestLogTarget = o.requestLog ??
    { kind: "daily", dir: join(o.dataDir, "logs") };
  let requestLog: RequestLog;
  try {
    requestLog = new RequestLog(
      logTarget,
      (err) => log(`cncopd: cannot write the request log: ${messageOf(err)}`),
    );
  } catch (err) {
    data.close();
    throw new CncopError(`cannot open the request log: ${messageOf(err)}`, {
      hint: "give --request-log a file or directory cncopd can write",
      cause: err,
    });
  }

  // Abandoned uploads and old daily request logs: swept now and then periodically; one
  // sweep at a time.
  let sweeping: Promise<unknown> = Promise.resolve();
  const sweep = () => {
    const run = sweeping.then(() => {
      if (logTarget.kind === "daily") {
        removeOldRequestLogs(logTarget.dir, o.requestLogDays ?? DEFAULT_REQUEST_LOG_DAYS);
      }
      return sweepUploads(o.dataDir, data.catalog, {
        expiryMs: o.uploadExpiryMs ?? DEFAULT_UPLOAD_EXPIRY_MS,
        claims: uploads,
      });
    });
    sweeping = run.then((r) => {
      if (r.uploads || r.orphans) {
        log(
          `cncopd: removed ${r.uploads} abandoned upload(s) and ${r.orphans} stray part file(s) ` +
            `(${r.bytes} bytes)`,
        );
      }
    }, (err: unknown) => log(`cncopd: upload expiry: ${messageOf(err)}`));
    return run;
  };
  await sweep().catch(() => {}); // logged above; a failed sweep does not stop the server

  const handler = (req: http.IncomingMessage, res: http.ServerResponse) => {
    watchRequest(req, res, () => auth.names.get(req), (e) => requestLog.write(e));
    route(ctx, req, res).catch((err: unknown) => {
      if (res.headersSent) {
        res.destroy();
        return;
      }
      if (err instanceof HttpError) {
        sendJson(res, err.status, { error: err.message, ...err.extra }, err.headers);
      } else {
        log(`cncopd: ${req.method} ${req.url?.split("?")[0]}: ${messageOf(err)}`);
        sendJson(res, 500, { error: "internal error" });
      }
      // Unread request bodies would stall keep-alive; drop the connection instead.
      if (!req.complete) req.socket.destroySoon?.();
    });
  };
  const tls = o.tlsCert !== undefined && o.tlsKey !== undefined;
  let server: http.Server;
  try {
    server = tls
      ? https.createServer(
        { cert: readFileSync(o.tlsCert!), key: readFileSync(o.tlsKey!) },
        handler,
      )
      : http.createServer(handler);
  } catch (err) {
    requestLog.close();
    data.close();
    throw err;
  }
  server.headersTimeout = 30_000;
  server.requestTimeout = 15 * 60_000;
  server.keepAliveTimeout = 5_000;
  server.maxHeadersCount = 100;
  const host = o.host ?? "127.0.0.1";
  try {
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(o.port ?? 8443, host, () => resolve());
    });
  } catch (err) {
    requestLog.close();
    data.close();
    throw err;
  }
  const timer = setInterval(
    () => void sweep().catch(() => {}),
    o.uploadSweepMs ?? UPLOAD_SWEEP_INTERVAL_MS,
  );
  timer.unref();
  const port = (server.address() as AddressInfo).port;
  const shownHost = host.includes(":") ? `[${host}]` : host;
  return {
    url: `${tls ? "https" : "http"}://${shownHost}:${port}`,
    port,
    data,
    sweepUploads: sweep,
    close: async () => {
      clearInterval(timer);
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections?.();
      });
      await sweeping;
      requestLog.close();
      data.close();
    },
  };
}

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
import { messageOf } from "../core/errors.ts";
import { Authenticator } from "./auth.ts";
import { type DataDir, openDataDir } from "./data_dir.ts";
import { HttpError, sendJson } from "./http_util.ts";
import { route, type RouteContext } from "./routes.ts";
import { Uploads } from "./upload.ts";

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
}

/** A running server. */
export interface RunningServer {
  url: string;
  port: number;
  data: DataDir;
  close(): Promise<void>;
}

/** Opens the data directory (initialising it when empty) and starts listening. */
export async function startServer(o: ServerOptions): Promise<RunningServer> {
  const log = o.log ?? ((l: string) => process.stderr.write(l + "\n"));
  const data = await openDataDir(o.dataDir, { cleanTmp: true });
  const maxPack = o.maxPackBytes ?? 64 * 1024 ** 3;
  const applyCtx = { catalog: data.catalog, blobs: data.blobs, maxBodySize: maxPack * 64 };
  const ctx: RouteContext = {
    catalog: data.catalog,
    blobs: data.blobs,
    auth: new Authenticator(data.catalog, { rate: o.rate ?? 200, burst: o.burst ?? 400 }),
    uploads: new Uploads(applyCtx, o.dataDir, {
      maxPack,
      maxChunk: o.maxChunkBytes ?? 16 * 1024 * 1024,
    }),
  };
  const handler = (req: http.IncomingMessage, res: http.ServerResponse) => {
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
  const server = tls
    ? https.createServer({ cert: readFileSync(o.tlsCert!), key: readFileSync(o.tlsKey!) }, handler)
    : http.createServer(handler);
  server.headersTimeout = 30_000;
  server.requestTimeout = 15 * 60_000;
  server.keepAliveTimeout = 5_000;
  server.maxHeadersCount = 100;
  const host = o.host ?? "127.0.0.1";
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(o.port ?? 8443, host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const shownHost = host.includes(":") ? `[${host}]` : host;
  return {
    url: `${tls ? "https" : "http"}://${shownHost}:${port}`,
    port,
    data,
    close: async () => {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections?.();
      });
      data.close();
    },
  };
}

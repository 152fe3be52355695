/**
 * Device tokens and request admission: a token is 32 random bytes (base64url) shown once;
 * only its SHA-256 is stored. Requests are rate-limited per device and failed logins per
 * client address.
 *
 * @module
 */
import { createHash, randomBytes } from "node:crypto";
import type { IncomingMessage } from "node:http";
import type { Catalog, DeviceRow } from "./catalog.ts";
import { HttpError } from "./http_util.ts";

/** A new device token (shown once). */
export function newToken(): string {
  return "cncop_" + randomBytes(32).toString("base64url");
}

/** SHA-256 hex of a token: what the catalog stores. */
export function tokenHash(token: string): string {
  return createHash("sha256").update(token, "utf8").digest("hex");
}

/** A token bucket per key. */
export class RateLimiter {
  #buckets = new Map<string, { tokens: number; at: number }>();
  readonly rate: number;
  readonly burst: number;
  /** `rate` requests per second, up to `burst` at once. */
  constructor(rate: number, burst: number) {
    this.rate = rate;
    this.burst = burst;
  }
  /** Takes one token; false when the key is over its rate. */
  take(key: string, now = Date.now()): boolean {
    if (this.#buckets.size > 100_000) this.#buckets.clear(); // bounded memory
    const b = this.#buckets.get(key) ?? { tokens: this.burst, at: now };
    b.tokens = Math.min(this.burst, b.tokens + ((now - b.at) / 1000) * this.rate);
    b.at = now;
    this.#buckets.set(key, b);
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }
}

/** Admission control for requests. */
export class Authenticator {
  #catalog: Catalog;
  #perDevice: RateLimiter;
  #failures: RateLimiter;
  constructor(catalog: Catalog, options: { rate: number; burst: number }) {
    this.#catalog = catalog;
    this.#perDevice = new RateLimiter(options.rate, options.burst);
    this.#failures = new RateLimiter(1, 20);
  }

  /**
   * The device a request's bearer token names.
   *
   * @throws {HttpError} 401 for a missing, wrong or revoked token; 429 when over the rate.
   */
  authenticate(req: IncomingMessage): DeviceRow {
    const addr = req.socket.remoteAddress ?? "?";
    const m = /^Bearer ([A-Za-z0-9._~+/=-]{1,200})$/.exec(req.headers.authorization ?? "");
    const device = m ? this.#catalog.deviceByToken(tokenHash(m[1]!)) : undefined;
    if (!device) {
      if (!this.#failures.take(addr)) {
        throw new HttpError(429, "too many requests", { headers: { "retry-after": "5" } });
      }
      throw new HttpError(401, "unauthorized", {
        headers: { "www-authenticate": 'Bearer realm="cncop"' },
      });
    }
    if (!this.#perDevice.take(String(device.id))) {
      throw new HttpError(429, "too many requests", { headers: { "retry-after": "1" } });
    }
    return device;
  }
}

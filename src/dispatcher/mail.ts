/**
 * Ad-hoc `--email`: one message per finished job, through the `[mail]` SMTP settings.
 *
 * @module
 */
import type { CncopConfig } from "../core/config.ts";
import { UsageError } from "../core/errors.ts";

/** Everything a job's mail tells. */
export interface JobMail {
  jobId: number;
  jobTitle: string;
  jobType: string;
  result: "OK" | "ERROR";
  message?: string;
  session: string;
  startedAt: Date;
  endedAt: Date;
  attempts: number;
  stats: Record<string, number>;
  /** The last lines of the job's part of the CA log. */
  logTail: string[];
  logPath: string;
  host: string;
}

/**
 * Parses `--email ADDR[,ADDR]` and checks mail can be sent at all.
 *
 * @throws {UsageError} when an address is malformed or `[mail] mail_server` is not set.
 */
export function parseRecipients(value: string, config: CncopConfig): string[] {
  const list = value.split(",").map((a) => a.trim()).filter((a) => a !== "");
  if (list.length === 0) throw new UsageError("--email needs at least one address");
  for (const a of list) {
    if (!/^[^\s@<>,]+@[^\s@<>,]+$/.test(a)) {
      throw new UsageError(`--email: ${JSON.stringify(a)} is not an e-mail address`);
    }
  }
  if (config.mail.server === undefined) {
    throw new UsageError("--email needs an SMTP server, and none is configured", {
      hint: `set mail_server (and port, tls, user, password, from) under [mail] in ${
        config.file ?? "Config/cncop3.ini"
      }`,
    });
  }
  return list;
}

function duration(ms: number): string {
  const s = Math.round(ms / 1000);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return h > 0 ? `${h} h ${m} min ${s % 60} s` : m > 0 ? `${m} min ${s % 60} s` : `${s} s`;
}

/** The subject and text of a job's mail. */
export function formatJobMail(m: JobMail): { subject: string; text: string } {
  const subject = `cncop ${m.result}: job ${m.jobId} ${m.jobTitle} (${m.jobType}) on ${m.host}`;
  const lines = [
    `Job:       ${m.jobId} ${m.jobTitle} (${m.jobType})`,
    `Result:    ${m.result}`,
    ...(m.message ? [`Reason:    ${m.message}`] : []),
    `Host:      ${m.host}`,
    `Started:   ${m.startedAt.toISOString()}`,
    `Ended:     ${m.endedAt.toISOString()}`,
    `Duration:  ${duration(m.endedAt.getTime() - m.startedAt.getTime())}`,
    `Attempts:  ${m.attempts} (re-runs: ${Math.max(0, m.attempts - 1)})`,
    `Session:   ${m.session}`,
    "",
    "Counts:",
    ...(Object.keys(m.stats).length === 0
      ? ["  (none reported)"]
      : Object.entries(m.stats).map(([k, v]) => `  ${k}: ${v}`)),
    "",
    `Log (${m.logPath}), last lines:`,
    ...m.logTail.map((l) => `  ${l}`),
    "",
  ];
  return { subject, text: lines.join("\n") };
}

/**
 * Sends a job's mail to `to` through the `[mail]` settings.
 *
 * @throws whatever nodemailer throws (the caller logs it; it never changes a job's result).
 */
export async function sendJobMail(config: CncopConfig, to: string[], m: JobMail): Promise<void> {
  const mail = config.mail;
  // Loaded on first use: most dispatcher runs send no mail, and it is slow to load.
  const { default: nodemailer } = await import("nodemailer");
  const transport = nodemailer.createTransport({
    host: mail.server,
    port: mail.port,
    secure: mail.tls === "tls",
    requireTLS: mail.tls === "starttls",
    ignoreTLS: mail.tls === "none",
    auth: mail.user ? { user: mail.user, pass: mail.password ?? "" } : undefined,
    connectionTimeout: 30_000,
    greetingTimeout: 30_000,
    socketTimeout: 60_000,
  });
  try {
    const { subject, text } = formatJobMail(m);
    await transport.sendMail({ from: mail.from, to: to.join(", "), subject, text });
  } finally {
    transport.close();
  }
}

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { createServer } from "node:net";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { SMTPServer } from "smtp-server";
import { formatJobMail } from "../../src/dispatcher/mail.ts";
import {
  addJob,
  type AgentRun,
  cncopagent,
  records,
  reports,
  startCncopagent,
  type TestHome,
  testHome,
  waitForFile,
} from "../helpers/dispatcher.ts";

interface Received {
  from: string;
  to: string[];
  secure: boolean;
  user: string | undefined;
  raw: string;
}

const received: Received[] = [];
let server: SMTPServer;
let port = 0;
let certFile = "";

let certDir = "";

before(async () => {
  // Not tempDir(): an after() registered inside a hook would run as soon as the hook ends.
  certDir = mkdtempSync(join(tmpdir(), "cncop-smtp-"));
  const dir = certDir;
  certFile = join(dir, "cert.pem");
  const keyFile = join(dir, "key.pem");
  execFileSync("openssl", [
    "req",
    "-x509",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-keyout",
    keyFile,
    "-out",
    certFile,
    "-days",
    "2",
    "-subj",
    "/CN=127.0.0.1",
    "-addext",
    "subjectAltName=IP:127.0.0.1",
  ], { stdio: "ignore" });
  server = new SMTPServer({
    key: readFileSync(keyFile),
    cert: readFileSync(certFile),
    // AUTH only after STARTTLS: a delivered message proves both happened.
    allowInsecureAuth: false,
    authMethods: ["PLAIN", "LOGIN"],
    onAuth(auth, _session, cb) {
      if (auth.username === "backup" && auth.password === "s3cret") {
        cb(null, { user: auth.username });
      } else cb(new Error("invalid credentials"));
    },
    onData(stream, session, cb) {
      let raw = "";
      stream.setEncoding("utf8").on("data", (d: string) => (raw += d));
      stream.on("end", () => {
        received.push({
          from: session.envelope.mailFrom ? session.envelope.mailFrom.address : "",
          to: session.envelope.rcptTo.map((r) => r.address),
          secure: session.secure,
          user: session.user as string | undefined,
          raw,
        });
        cb();
      });
    },
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  port = (server.server.address() as { port: number }).port;
});

after(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
  rmSync(certDir, { recursive: true, force: true });
});

function mailHome(): TestHome {
  const h = testHome();
  writeFileSync(
    h.paths.configFile,
    `[mail]
mail_server = 127.0.0.1
port = ${port}
tls = starttls
user = backup
password = s3cret
from = cncop@test.local
`,
  );
  h.env.NODE_EXTRA_CA_CERTS = certFile;
  return h;
}

/** Quoted-printable body to text. */
function decodeQp(s: string): string {
  return Buffer.from(
    s.replace(/=\r?\n/g, "").replace(
      /=([0-9A-F]{2})/g,
      (_, h) => String.fromCharCode(parseInt(h, 16)),
    ),
    "latin1",
  ).toString("utf8");
}

function mailFor(title: string, since: number): { subject: string; body: string } {
  const m = received.slice(since).filter((r) => r.raw.includes(`${title} (`));
  assert.equal(m.length, 1, `one mail for ${title}`);
  const raw = m[0]!.raw;
  const subject = /^Subject: (.*(?:\r?\n[ \t].*)*)/m.exec(raw)![1]!.replace(/\r?\n[ \t]/g, " ");
  const body = decodeQp(raw.slice(raw.search(/\r?\n\r?\n/)));
  return { subject, body };
}

/** The job's result as stdout, the CA log, its JF report and (when mailed) its mail state it. */
function oneTruth(h: TestHome, run: AgentRun, title: string, since?: number): string {
  const line = new RegExp(`^job \\d+ "${title}" \\(\\w+\\): (OK|ERROR)`, "m").exec(run.stdout);
  const logged = new RegExp(`"${title}" \\(\\w+\\): finished (OK|ERROR)`).exec(run.log);
  const jfs = reports(h, "JF").filter((r) => r.jobTitle === title);
  assert.equal(jfs.length, 1, `exactly one JF for ${title}`);
  const result = jfs[0]!.result!;
  assert.equal(line?.[1], result, `${title}: summary`);
  assert.equal(logged?.[1], result, `${title}: CA log`);
  if (since !== undefined) {
    const { subject, body } = mailFor(title, since);
    assert.match(subject, new RegExp(`^cncop ${result}: job \\d+ ${title} `));
    assert.match(body, new RegExp(`^Result: +${result}$`, "m"));
    if (jfs[0]!.message) assert.ok(body.includes(jfs[0]!.message!), body);
  }
  return result;
}

test("formatJobMail() states job, result, timings, counts, retries and the log tail", () => {
  const { subject, text } = formatJobMail({
    jobId: 7,
    jobTitle: "Docs",
    jobType: "CCS",
    result: "ERROR",
    message: "the agent ended with ERROR (attempt 2)",
    session: "s-1",
    startedAt: new Date("2026-01-01T10:00:00Z"),
    endedAt: new Date("2026-01-01T11:02:03Z"),
    attempts: 2,
    stats: { files: 3 },
    logTail: ["line one", "line two"],
    logPath: "/h/Logs/CA-26-01-01_1000.log",
    host: "box",
  });
  assert.equal(subject, "cncop ERROR: job 7 Docs (CCS) on box");
  assert.match(text, /^Duration: +1 h 2 min 3 s$/m);
  assert.match(text, /^Attempts: +2 \(re-runs: 1\)$/m);
  assert.match(text, /^ {2}files: 3$/m);
  assert.match(text, /^ {2}line two$/m);
});

test("cncopagent --email mails each job through STARTTLS with auth; one result everywhere", {
  timeout: 120_000,
}, async () => {
  const h = mailHome();
  addJob(h, { title: "Good", agentArgs: ["--stats", "files=12,bytes=4096"] });
  addJob(h, { title: "Bad", agentArgs: ["--mode", "error"] });
  addJob(h, { title: "Again", maxRetries: 2, agentArgs: ["--mode", "rerun-always"] });
  addJob(h, { title: "Boom", agentArgs: ["--mode", "crash"] });
  addJob(h, { title: "Refused", prerun: "../Config/cncop3.ini" });
  addJob(h, { title: "PreFail", prerun: "hook pre --exit 4 --stderr-bytes 10" });
  const since = received.length;
  const titles = ["Good", "Bad", "Again", "Boom", "Refused", "PreFail"];
  const run = await cncopagent(h, ["--email", "ops@example.test, boss@example.test", ...titles]);
  assert.equal(run.status, 1, run.log);
  assert.equal(
    received.length - since,
    6,
    run.log.split("\n").filter((l) => l.includes("mail")).join("\n"),
  );
  for (const m of received.slice(since)) {
    assert.deepEqual(m.to, ["ops@example.test", "boss@example.test"]);
    assert.equal(m.from, "cncop@test.local");
    assert.equal(m.secure, true, "STARTTLS");
    assert.equal(m.user, "backup");
  }
  const results = titles.map((t) => oneTruth(h, run, t, since));
  assert.deepEqual(results, ["OK", "ERROR", "ERROR", "ERROR", "ERROR", "ERROR"]);
  const good = mailFor("Good", since).body;
  assert.match(good, /^ {2}files: 12$/m);
  assert.match(good, /^ {2}bytes: 4096$/m);
  assert.match(good, /"Good" \(RSYNC\): finished OK/, "the tail of the log");
  assert.match(mailFor("Again", since).body, /^Attempts: +3 \(re-runs: 2\)$/m);
  assert.match(run.log, /"Good" \(RSYNC\): mail sent to ops@example.test, boss@example.test/);
});

test("cncopagent --email refuses at start when no mail_server is configured", async () => {
  const h = testHome();
  addJob(h, { title: "Job" });
  const run = await cncopagent(h, ["--email", "ops@example.test", "Job"]);
  assert.equal(run.status, 2);
  assert.match(run.stderr, /--email needs an SMTP server.*set mail_server .* under \[mail\]/);
  assert.equal(records(h).length, 0);
  assert.equal(reports(h).length, 0);
  const bad = await cncopagent(mailHome(), ["--email", "not-an-address", "Job"]);
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /"not-an-address" is not an e-mail address/);
});

test("cncopagent: a mail failure is logged and never changes the result", async () => {
  const h = testHome();
  // A port nothing listens on.
  const probe = createServer();
  await new Promise<void>((r) => probe.listen(0, "127.0.0.1", r));
  const closed = (probe.address() as { port: number }).port;
  await new Promise<void>((r) => probe.close(() => r()));
  writeFileSync(
    h.paths.configFile,
    `[mail]\nmail_server = 127.0.0.1\nport = ${closed}\ntls = none\n`,
  );
  addJob(h, { title: "Job" });
  const run = await cncopagent(h, ["--email", "ops@example.test", "Job"]);
  assert.equal(run.status, 0, run.log);
  assert.match(run.log, /"Job" \(RSYNC\): mail to ops@example.test failed: .*ECONNREFUSED/);
  assert.equal(oneTruth(h, run, "Job"), "OK");
});

test("cncopagent --email on SIGTERM: the cancelled job's mail says ERROR too", {
  skip: process.platform === "win32",
  timeout: 60_000,
}, async () => {
  const h = mailHome();
  const job = addJob(h, { title: "Long", agentArgs: ["--mode", "hang"] });
  const since = received.length;
  const run = startCncopagent(h, ["--email", "ops@example.test", "Long"]);
  await waitForFile(join(h.state, `rsyncagent-${job.id}.hanging`));
  run.kill("SIGTERM");
  const out = await run.done;
  assert.equal(out.status, 1);
  assert.equal(oneTruth(h, out, "Long", since), "ERROR");
  assert.match(mailFor("Long", since).body, /^Reason: +cancelled \(SIGTERM\)$/m);
});

import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { defaultConfigText, loadConfig, parseConfig } from "../../src/core/config.ts";
import { ConfigError } from "../../src/core/errors.ts";
import { tempDir } from "../helpers/tmp.ts";

function errorOf(text: string): ConfigError {
  try {
    parseConfig(text, "/etc/cncop3.ini");
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`);
    return err;
  }
  assert.fail("expected an error");
}

test("parseConfig() gives the defaults for an empty file", () => {
  const c = parseConfig("", "x.ini");
  assert.equal(c.defaults.daysOfLogs, 90);
  assert.equal(c.defaults.deleteCollar, 1500);
  assert.equal(c.mail.server, undefined);
  assert.equal(c.mail.port, 25);
  assert.equal(c.mail.tls, "starttls");
  assert.equal(c.network.url, undefined);
});

test("parseConfig() reads values, comments and quoting", () => {
  const c = parseConfig(
    [
      "; comment",
      "[defaults]",
      "days_of_logs = 14 ; two weeks",
      "[mail]",
      "mail_server = smtp.example",
      "port=587",
      "tls = tls",
      'password = "p;ss"',
      "[network]",
      "url = https://backup.example:8443",
      "token = abc",
    ].join("\n"),
    "x.ini",
  );
  assert.equal(c.defaults.daysOfLogs, 14);
  assert.equal(c.mail.server, "smtp.example");
  assert.equal(c.mail.port, 587);
  assert.equal(c.mail.tls, "tls");
  assert.equal(c.mail.password, "p;ss");
  assert.equal(c.network.url, "https://backup.example:8443");
  assert.equal(c.network.token, "abc");
});

test("parseConfig() names file, line and key for a bad value", () => {
  const err = errorOf("[defaults]\n\n; c\ndays_of_logs=abc\n");
  assert.match(
    err.message,
    /^\/etc\/cncop3\.ini:4: \[defaults\] days_of_logs must be a whole number/,
  );
  assert.match(err.message, /"abc"/);
});

test("parseConfig() rejects malformed lines, headers, unknown keys and sections", () => {
  assert.match(
    errorOf("[defaults]\ngarbage line\n").message,
    /cncop3\.ini:2: expected 'key = value'/,
  );
  assert.match(errorOf("[defaults\n").message, /:1: malformed section header/);
  assert.match(errorOf("[defaults]\ndays_of_log=3\n").message, /:2: unknown key 'days_of_log'/);
  assert.match(errorOf("[mailx]\n").message, /:1: unknown section \[mailx\]/);
  assert.match(
    errorOf("days_of_logs=3\n").message,
    /:1: key 'days_of_logs' is outside any section/,
  );
  assert.match(
    errorOf("[mail]\ntls=ssl\n").message,
    /:2: \[mail\] tls must be none, starttls or tls/,
  );
  assert.match(
    errorOf("[mail]\nport=0\n").message,
    /:2: \[mail\] port must be a whole number of at least 1/,
  );
  assert.match(errorOf("[network]\nurl=ftp://x\n").message, /:2: \[network\] url must be an http/);
  assert.match(errorOf("[mail]\n[mail]\n").message, /:2: section \[mail\] appears twice/);
});

test("defaultConfigText() parses back to the defaults", () => {
  const c = parseConfig(defaultConfigText(), "d.ini");
  assert.deepEqual(c.defaults, parseConfig("", "e.ini").defaults);
  assert.match(defaultConfigText(), /;days_of_logs = 90/);
});

test("loadConfig() requires a -c file to exist but not the home's", () => {
  const dir = tempDir();
  assert.throws(
    () => loadConfig({ configPath: join(dir, "none.ini") }),
    /cannot read .*none\.ini: ENOENT/,
  );
  assert.equal(loadConfig({ home: dir }).file, undefined);
  writeFileSync(join(dir, "c.ini"), "[defaults]\ndays_of_logs = 7\n");
  assert.equal(loadConfig({ configPath: join(dir, "c.ini") }).defaults.daysOfLogs, 7);
});

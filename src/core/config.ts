/**
 * cncop3.ini: reading, validation and the commented default file.
 *
 * Values are parsed by the `ini` package; a small pass over the lines finds where each
 * key stands, so every error names the file, the line and the key.
 *
 * @module
 */
import { readFileSync } from "node:fs";
import { parse } from "ini";
import { ConfigError, errnoCode } from "./errors.ts";

/** TLS modes of the `[mail]` section. */
export type MailTls = "none" | "starttls" | "tls";

/** The settings of cncop3.ini, with defaults filled in. */
export interface CncopConfig {
  /** The file read, or undefined when there was none (all defaults). */
  file: string | undefined;
  defaults: {
    daysOfLogs: number;
    maxRetries: number;
    commandTimeout: number;
    deleteCollar: number;
    retentionDays: number;
  };
  mail: {
    server: string | undefined;
    port: number;
    tls: MailTls;
    user: string | undefined;
    password: string | undefined;
    from: string;
  };
  network: {
    url: string | undefined;
    token: string | undefined;
    caFile: string | undefined;
  };
}

type Kind = "int" | "string" | "tls" | "url";

interface KeySpec {
  kind: Kind;
  min?: number;
  default: string;
  doc: string;
}

/** Every known section and key, with its type, default and one line of documentation. */
export const configSchema: Record<string, Record<string, KeySpec>> = {
  defaults: {
    days_of_logs: { kind: "int", min: 1, default: "90", doc: "days to keep program logs" },
    max_retries: {
      kind: "int",
      min: 0,
      default: "3",
      doc: "re-runs of a job whose agent asks for one (new jobs)",
    },
    command_timeout: {
      kind: "int",
      min: 1,
      default: "3600",
      doc: "seconds a pre/post command may run (new jobs)",
    },
    delete_collar: {
      kind: "int",
      min: 0,
      default: "1500",
      doc: "most cloud deletes per run (new jobs)",
    },
    retention_days: {
      kind: "int",
      min: 1,
      default: "30",
      doc: "days deleted files and old versions stay restorable (new jobs)",
    },
  },
  mail: {
    mail_server: { kind: "string", default: "", doc: "SMTP host; empty disables --email" },
    port: { kind: "int", min: 1, default: "25", doc: "SMTP port" },
    tls: { kind: "tls", default: "starttls", doc: "none, starttls or tls" },
    user: { kind: "string", default: "", doc: "SMTP user (empty: no auth)" },
    password: { kind: "string", default: "", doc: "SMTP password" },
    from: { kind: "string", default: "cncop@localhost", doc: "sender address" },
  },
  network: {
    url: { kind: "url", default: "", doc: "the cncop network, e.g. https://backup.example:8443" },
    token: { kind: "string", default: "", doc: "this device's token (cncopd device add)" },
    ca_file: { kind: "string", default: "", doc: "PEM file of a private CA to trust" },
  },
};

interface Located {
  line: number;
  value: string;
}

/** Finds the line of every `key = value` per section; rejects lines that are neither. */
function locateKeys(file: string, text: string): Map<string, Map<string, Located>> {
  const found = new Map<string, Map<string, Located>>();
  let section = "";
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    const where = `${file}:${i + 1}`;
    if (line === "" || line.startsWith(";") || line.startsWith("#")) continue;
    if (line.startsWith("[")) {
      const m = /^\[([^\]]+)\]\s*(?:[;#].*)?$/.exec(line);
      if (!m) {
        throw new ConfigError(`${where}: malformed section header ${JSON.stringify(line)}`, {
          hint: "write it as [name]",
        });
      }
      section = m[1]!.trim();
      if (!(section in configSchema)) {
        throw new ConfigError(`${where}: unknown section [${section}]`, {
          hint: `known sections: ${Object.keys(configSchema).map((s) => `[${s}]`).join(", ")}`,
        });
      }
      if (found.has(section)) {
        throw new ConfigError(`${where}: section [${section}] appears twice`, {
          hint: "merge the two sections",
        });
      }
      found.set(section, new Map());
      continue;
    }
    const eq = line.indexOf("=");
    if (eq <= 0) {
      throw new ConfigError(`${where}: expected 'key = value', found ${JSON.stringify(line)}`, {
        hint: "comment it out with ';' or write key = value",
      });
    }
    const key = line.slice(0, eq).trim();
    if (section === "") {
      throw new ConfigError(`${where}: key '${key}' is outside any section`, {
        hint: "put it under [defaults], [mail] or [network]",
      });
    }
    const known = configSchema[section]!;
    if (!(key in known)) {
      throw new ConfigError(`${where}: unknown key '${key}' in [${section}]`, {
        hint: `known keys: ${Object.keys(known).join(", ")}`,
      });
    }
    found.get(section)!.set(key, { line: i + 1, value: line.slice(eq + 1).trim() });
  }
  return found;
}

function checkValue(file: string, section: string, key: string, line: number, value: string) {
  const spec = configSchema[section]![key]!;
  const where = `${file}:${line}: [${section}] ${key}`;
  if (spec.kind === "int") {
    if (!/^\d+$/.test(value) || Number(value) < (spec.min ?? 0)) {
      throw new ConfigError(
        `${where} must be a whole number${spec.min ? ` of at least ${spec.min}` : ""}, not ${
          JSON.stringify(value)
        }`,
        { hint: `for example ${key} = ${spec.default}` },
      );
    }
  } else if (spec.kind === "tls") {
    if (!["none", "starttls", "tls"].includes(value)) {
      throw new ConfigError(`${where} must be none, starttls or tls, not ${JSON.stringify(value)}`);
    }
  } else if (spec.kind === "url" && value !== "") {
    let ok = false;
    try {
      const u = new URL(value);
      ok = u.protocol === "http:" || u.protocol === "https:";
    } catch {
      ok = false;
    }
    if (!ok) {
      throw new ConfigError(
        `${where} must be an http:// or https:// URL, not ${JSON.stringify(value)}`,
      );
    }
  }
}

/**
 * Parses the text of a cncop3.ini. `file` names it in errors.
 *
 * @throws {ConfigError} naming file, line and key for a malformed line or a bad value.
 */
export function parseConfig(text: string, file: string): CncopConfig {
  const located = locateKeys(file, text);
  const parsed = parse(text) as Record<string, Record<string, unknown>>;
  const value = (section: string, key: string): string => {
    const raw = parsed[section]?.[key];
    const v = raw === undefined || raw === true ? undefined : String(raw).trim();
    const spec = configSchema[section]![key]!;
    if (v === undefined) return spec.default;
    checkValue(file, section, key, located.get(section)?.get(key)?.line ?? 0, v);
    return v;
  };
  const int = (s: string, k: string) => Number(value(s, k));
  const opt = (s: string, k: string) => value(s, k) || undefined;
  return {
    file,
    defaults: {
      daysOfLogs: int("defaults", "days_of_logs"),
      maxRetries: int("defaults", "max_retries"),
      commandTimeout: int("defaults", "command_timeout"),
      deleteCollar: int("defaults", "delete_collar"),
      retentionDays: int("defaults", "retention_days"),
    },
    mail: {
      server: opt("mail", "mail_server"),
      port: int("mail", "port"),
      tls: value("mail", "tls") as MailTls,
      user: opt("mail", "user"),
      password: opt("mail", "password"),
      from: value("mail", "from"),
    },
    network: {
      url: opt("network", "url"),
      token: opt("network", "token"),
      caFile: opt("network", "ca_file"),
    },
  };
}

/** Options of {@link loadConfig}. */
export interface LoadConfigOptions {
  /** A cncop3.ini given with `-c`; it must exist. */
  configPath?: string;
  /** The application directory; its Config/cncop3.ini is read when present. */
  home?: string;
}

/**
 * Reads cncop3.ini: the `-c` file (which must exist), else `HOME/Config/cncop3.ini` when
 * present, else all defaults.
 *
 * @throws {ConfigError}
 */
export function loadConfig(options: LoadConfigOptions = {}): CncopConfig {
  const explicit = options.configPath;
  const file = explicit ?? (options.home ? `${options.home}/Config/cncop3.ini` : undefined);
  if (file === undefined) return parseConfig("", "(defaults)");
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    if (errnoCode(err) === "ENOENT" && explicit === undefined) {
      return { ...parseConfig("", "(defaults)"), file: undefined };
    }
    throw new ConfigError(`cannot read ${file}: ${errnoCode(err) ?? String(err)}`, {
      hint: explicit ? "check the -c path" : "run 'cncop init' to write a default one",
      cause: err,
    });
  }
  return parseConfig(text, file);
}

/** The commented default cncop3.ini that `cncop init` writes. */
export function defaultConfigText(): string {
  const out = [
    "; cncop3.ini: settings of this cncop application directory.",
    "; Lines starting with ';' are comments; remove the ';' to change a default.",
    "",
  ];
  for (const [section, keys] of Object.entries(configSchema)) {
    out.push(`[${section}]`);
    for (const [key, spec] of Object.entries(keys)) {
      out.push(`; ${spec.doc}`);
      out.push(`;${key} = ${spec.default}`);
    }
    out.push("");
  }
  return out.join("\n");
}

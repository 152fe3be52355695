/**
 * `cncopjobs`: manage the BackupJob database (add, list, show, edit, remove, export, import).
 *
 * @module
 */
import { writeFileAtomic } from "../core/atomic.ts";
import { appContext, type CommonOptions } from "../core/context.ts";
import { UsageError } from "../core/errors.ts";
import { type JobInput, type JobsDb, jobTypes, parseJobType } from "../core/jobs_db.ts";
import { exportJobs, formatJob, formatJobList, importJobs, readJobsFile } from "../core/jobs_io.ts";
import { type Command, intOption, newCommand, parseCommand } from "./command.ts";

interface FieldOptions {
  title?: string;
  type?: string;
  source?: string;
  destination?: string;
  maxRetries?: number;
  prerun?: string;
  postrunSuccess?: string;
  postrunFailure?: string;
  commandTimeout?: number;
  deleteCollar?: number;
  include?: string[];
  exclude?: string[];
  retention?: number;
  agentArg?: string[];
  setting?: string[];
  settingsJson?: string;
  enable?: boolean;
  disable?: boolean;
  clearInclude?: boolean;
  clearExclude?: boolean;
  clearAgentArgs?: boolean;
}

const collect = (v: string, prev: string[] | undefined) => [...(prev ?? []), v];

function fieldOptions(cmd: Command, editing: boolean): Command {
  cmd
    .option("--title <title>", "job title (unique, case-insensitive)")
    .option("--type <type>", `job type: ${Object.keys(jobTypes).join(", ")}`)
    .option("--source <source>", "what to back up (path, or host:path for pull jobs)")
    .option("--destination <dest>", "where pull jobs put their copy")
    .option(
      "--max-retries <n>",
      "re-runs when the agent asks (exit 75)",
      intOption("--max-retries"),
    )
    .option("--prerun <command>", "command from Bin/ to run before the job")
    .option("--postrun-success <command>", "command from Bin/ to run after a successful job")
    .option("--postrun-failure <command>", "command from Bin/ to run after a failed job")
    .option(
      "--command-timeout <seconds>",
      "time limit of each pre/post command",
      intOption("--command-timeout"),
    )
    .option("--delete-collar <n>", "most cloud deletes per run", intOption("--delete-collar"))
    .option("--include <glob>", "include filter (repeatable)", collect)
    .option("--exclude <glob>", "exclude filter (repeatable)", collect)
    .option("--retention <days>", "days old versions stay restorable", intOption("--retention"))
    .option("--agent-arg <arg>", "extra option for the job's agent (repeatable)", collect)
    .option("--setting <key=value>", "type-specific setting (repeatable)", collect)
    .option("--settings-json <json>", "type-specific settings as one JSON object")
    .option("--disable", "create or set the job disabled");
  if (editing) {
    cmd
      .option("--enable", "enable the job")
      .option("--clear-include", "remove every include filter first")
      .option("--clear-exclude", "remove every exclude filter first")
      .option("--clear-agent-args", "remove every agent argument first");
  }
  return cmd;
}

function parseSettings(o: FieldOptions, base: Record<string, unknown>): Record<string, unknown> {
  let settings = { ...base };
  if (o.settingsJson !== undefined) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(o.settingsJson);
    } catch {
      throw new UsageError("--settings-json is not valid JSON", {
        hint: `for example --settings-json '{"host":"nas1","port":22}'`,
      });
    }
    if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
      throw new UsageError("--settings-json must be a JSON object");
    }
    settings = { ...settings, ...parsed };
  }
  for (const kv of o.setting ?? []) {
    const eq = kv.indexOf("=");
    if (eq <= 0) throw new UsageError(`--setting ${JSON.stringify(kv)} is not key=value`);
    const raw = kv.slice(eq + 1);
    settings[kv.slice(0, eq)] = /^-?\d+$/.test(raw) ? Number(raw) : raw;
  }
  return settings;
}

function toInput(o: FieldOptions, db: JobsDb, ref?: string): JobInput {
  const old = ref === undefined ? undefined : db.find(ref);
  if (o.enable && o.disable) throw new UsageError("--enable and --disable contradict each other");
  const input: JobInput = {
    title: o.title,
    type: o.type === undefined ? undefined : parseJobType(o.type),
    source: o.source,
    destination: o.destination,
    maxRetries: o.maxRetries,
    prerun: o.prerun,
    postrunSuccess: o.postrunSuccess,
    postrunFailure: o.postrunFailure,
    commandTimeout: o.commandTimeout,
    deleteCollar: o.deleteCollar,
    retentionDays: o.retention,
    enabled: o.disable ? false : o.enable ? true : undefined,
  };
  const extend = (clear: boolean | undefined, prev: string[] | undefined, add?: string[]) =>
    clear || add ? [...(clear ? [] : prev ?? []), ...(add ?? [])] : undefined;
  input.include = extend(o.clearInclude, old?.include, o.include);
  input.exclude = extend(o.clearExclude, old?.exclude, o.exclude);
  input.agentArgs = extend(o.clearAgentArgs, old?.agentArgs, o.agentArg);
  if (o.setting || o.settingsJson !== undefined) {
    input.settings = parseSettings(o, old?.settings ?? {});
  }
  return input;
}

/** Runs `cncopjobs`. */
export async function main(argv: string[]): Promise<number> {
  const program = newCommand("cncopjobs", "manage the BackupJob database")
    .option("-c, --config <file>", "another cncop3.ini")
    .option("-d, --debug", "diagnostic output");
  let action: ((common: CommonOptions) => number) | undefined;
  const out = (s: string) => process.stdout.write(s);

  fieldOptions(program.command("add").description("add a job"), false).action((o: FieldOptions) => {
    action = (common) =>
      withDb(common, (db) => {
        if (!o.title || !o.type || !o.source) {
          throw new UsageError("add needs --title, --type and --source", {
            hint: "run 'cncopjobs add --help'",
          });
        }
        const job = db.add({
          ...toInput(o, db),
          title: o.title,
          type: parseJobType(o.type),
          source: o.source,
        });
        out(`added job ${job.id} ${JSON.stringify(job.title)} (${job.type}, ${job.direction})\n`);
        return 0;
      });
  });
  program.command("list").description("list the jobs").option("--json", "as JSON").action(
    (o: { json?: boolean }) => {
      action = (common) =>
        withDb(common, (db) => {
          out(o.json ? exportJobs(db.list()) : formatJobList(db.list()));
          return 0;
        });
    },
  );
  program.command("show").description("show every field of a job").argument("<job>", "id or title")
    .option("--json", "as JSON").action((ref: string, o: { json?: boolean }) => {
      action = (common) =>
        withDb(common, (db) => {
          const job = db.find(ref);
          out(o.json ? JSON.stringify(job, null, 2) + "\n" : formatJob(job));
          return 0;
        });
    });
  fieldOptions(
    program.command("edit").description("change fields of a job").argument("<job>", "id or title"),
    true,
  ).action((ref: string, o: FieldOptions) => {
    action = (common) =>
      withDb(common, (db) => {
        const job = db.edit(ref, toInput(o, db, ref));
        out(`updated job ${job.id} ${JSON.stringify(job.title)}\n`);
        return 0;
      });
  });
  program.command("remove").description("remove a job").argument("<job>", "id or title").action(
    (ref: string) => {
      action = (common) =>
        withDb(common, (db) => {
          const job = db.remove(ref);
          out(`removed job ${job.id} ${JSON.stringify(job.title)}\n`);
          return 0;
        });
    },
  );
  program.command("export").description("write every job as JSON").argument(
    "[file]",
    "file to write (atomically); standard output when absent",
  ).action((file: string | undefined) => {
    action = (common) =>
      withDb(common, (db) => {
        const text = exportJobs(db.list());
        if (file) writeFileAtomic(file, text);
        else out(text);
        return 0;
      });
  });
  program.command("import").description("add jobs from an export file (all or nothing)")
    .argument("<file>", "a file written by 'cncopjobs export'")
    .option("--replace", "update jobs whose title exists instead of refusing")
    .action((file: string, o: { replace?: boolean }) => {
      action = (common) =>
        withDb(common, (db) => {
          const res = importJobs(db, readJobsFile(file), o.replace ?? false);
          out(`imported ${res.added.length} new and ${res.updated.length} updated jobs\n`);
          return 0;
        });
    });

  if (!(await parseCommand(program, argv))) return 0;
  if (!action) {
    throw new UsageError("no command given", { hint: "run 'cncopjobs --help'" });
  }
  return action(program.opts<CommonOptions>());
}

function withDb(common: CommonOptions, fn: (db: JobsDb) => number): number {
  const db = appContext(common).openJobs();
  try {
    return fn(db);
  } finally {
    db.close();
  }
}

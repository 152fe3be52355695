/**
 * The table of programs the multi-call executable runs, by the name it is started under.
 * A program module exports `main(argv): Promise<number>`.
 *
 * @module
 */
import type { ProgramMain } from "./run.ts";

/** One program of the multi-call executable. */
export interface ProgramEntry {
  summary: string;
  load: () => Promise<{ main: ProgramMain }>;
}

/** Every program, by name. */
export const programs: Record<string, ProgramEntry> = {
  cncopagent: {
    summary: "the backup agent dispatcher: run jobs by type, re-run, pre/post commands",
    load: () => import("./cncopagent.ts"),
  },
  backupagentnq: {
    summary: "CCS enqueuer: peek, move promotion, pack, prune",
    load: () => import("./backupagentnq.ts"),
  },
  backupagentdq: {
    summary: "CCS dequeuer: upload pack files to the cncop network",
    load: () => import("./backupagentdq.ts"),
  },
  cncopreporter: {
    summary: "store and forward of job reports to the cncop network",
    load: () => import("./cncopreporter.ts"),
  },
  w: { summary: "page or follow the newest log of a program", load: () => import("./w.ts") },
  cncopjobs: { summary: "manage the BackupJob database", load: () => import("./cncopjobs.ts") },
  cncoprestore: {
    summary: "list versions and restore files from the cncop network",
    load: () => import("./cncoprestore.ts"),
  },
  cncopd: { summary: "the cncop network server", load: () => import("./cncopd.ts") },
  init: { summary: "create or complete an application directory", load: () => import("./init.ts") },
  zx: { summary: "run a zx script (.mjs) with zx's globals", load: () => import("./zx.ts") },
  version: {
    summary: "print version, platform, native core and runtime versions",
    load: () => import("./version.ts"),
  },
};

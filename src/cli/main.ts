#!/usr/bin/env node
/**
 * The multi-call entry point (`cncop`, or any program name linked to it).
 *
 * @module
 */
import module from "node:module";

// Node keeps the compiled (and type-stripped) modules in its on-disk compile cache: a
// program run from the sources then starts in a fraction of the time (the dispatcher starts
// several per job). Before the program's modules load, so the import below is dynamic.
module.enableCompileCache?.();
const { dispatch } = await import("./dispatch.ts");

const entryPath = process.env.CNCOP_ARGV0 ?? process.argv[1] ?? "cncop";
process.exitCode = await dispatch(entryPath, process.argv.slice(2));

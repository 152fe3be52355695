#!/usr/bin/env node
/**
 * The multi-call entry point (`cncop`, or any program name linked to it).
 *
 * @module
 */
import { dispatch } from "./dispatch.ts";

const entryPath = process.env.CNCOP_ARGV0 ?? process.argv[1] ?? "cncop";
process.exitCode = await dispatch(entryPath, process.argv.slice(2));

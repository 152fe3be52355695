#!/usr/bin/env node
// `npm run demo`: the README's first command. Makes an application directory under
// build/demo-home with embedded defaults, adds a CCS job for this repository's docs/ and
// lists the jobs. (When the CCS agent lands this runs a real backup against a local cncopd.)
import { $, cd, fs, path } from "zx";

const root = path.resolve(import.meta.dirname, "..");
cd(root);
const home = path.join(root, "build", "demo-home");
const env = { ...process.env, CNCOP_HOME: home };
const cncop = (args) => $({ env, stdio: "inherit" })`node src/cli/main.ts ${args}`;

await cncop(["init", home]);
const list = await $({ env })`node src/cli/main.ts cncopjobs list --json`;
if (!JSON.parse(list.stdout).jobs.some((j) => j.title === "Demo docs")) {
  await cncop(["cncopjobs", "add", "--title", "Demo docs", "--type", "ccs", "--source", path.join(root, "docs")]);
}
await cncop(["cncopjobs", "list"]);
await cncop(["version"]);
console.log(`\nApplication directory: ${home}`);

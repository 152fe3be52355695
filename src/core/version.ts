/**
 * The version of this cncop build.
 *
 * @module
 */
import pkg from "../../package.json" with { type: "json" };

/** The cncop version (package.json). */
export const cncopVersion: string = pkg.version;

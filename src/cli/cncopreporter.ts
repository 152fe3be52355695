/** `cncopreporter`: not implemented yet (a later issue builds it). @module */
import { notImplemented } from "./not_implemented.ts";

export const main = notImplemented("cncopreporter");

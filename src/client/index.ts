/**
 * The limitr-sidecar TypeScript client (`import { createLimitrClient } from "limitr-sidecar"`):
 * typed Allow/Check/Record/Reserve/Settle/Release/GetMeters, customer admin, and the event
 * stream as an async iterator, with deadlines, retries and automatic idempotency keys.
 */
export { createLimitrClient } from "./create-limitr-client.js";
export type { LimitrClient } from "./create-limitr-client.js";
/** The error every failed call rejects with: a gRPC status code name and the server's message. */
export { LimitrError } from "./limitr-error.js";
export type { StatusCodeName } from "./limitr-error.js";
/** Parses `'250MB'` into `{ amount: 250, unit: 'MB' }` (what the client sends for string amounts). */
export { parseAmount } from "./map-messages.js";
export type * from "./types.js";

/**
 * What an id must be to name something stored (a customer id or alt id, a ref, a reservation id,
 * an idempotency key): stores key rows by these ids. The limits come from LMDB, but they are the
 * product's, whatever the store: an id one store cannot keep must not be accepted by another.
 * Requests are checked here, naming the proto field, so that every RPC refuses such an id alike
 * (a read as well as the write it would lead to) and before anything is decided; the store
 * checks each write again, as the last line of defence.
 */
import { invalidArgument } from "../errors/index.js";
import type { DecisionRequest } from "./types.js";

/** LMDB keys are at most 1978 bytes; ids are capped well below so that composite keys fit. */
export const MAX_ID_BYTES = 512;

/**
 * lmdb-js's key encoding (ordered-binary) escapes U+0000–U+0004 only in strings shorter than this
 * many UTF-16 units; unescaped, they read back as the end of a key element (a key "a…\0b" reads as
 * ["a…", "b"]). A lookup by key still finds the row, but anything that reads keys back does not:
 * the meter keys [o + "\0x", e] and [o, "x", e] are the same bytes, so one meter's range (its
 * owner's meters, its holds) takes in the other's rows, and pruning would try to remove the key
 * it read back, which is not the one stored. So no id that goes into a key may be both.
 */
const CONTROL_CHARS_ESCAPED_BELOW = 64;

/** Why `id` is too long to be a key, or `undefined`. */
export function idLengthProblem(id: string): string | undefined {
  // Only a long id can be over the limit: a UTF-16 unit is at most 3 bytes of UTF-8.
  if (id.length * 3 > MAX_ID_BYTES && utf8Length(id) > MAX_ID_BYTES) return `must be at most ${MAX_ID_BYTES} bytes (UTF-8)`;
  return undefined;
}

/** Why `id` cannot be a key (too long, or long with U+0000–U+0004), or `undefined`. Empty is the caller's to judge. */
export function idProblem(id: string): string | undefined {
  const tooLong = idLengthProblem(id);
  if (tooLong !== undefined || id.length < CONTROL_CHARS_ESCAPED_BELOW) return tooLong;
  for (let i = 0; i < id.length; i++) {
    if (id.charCodeAt(i) <= 4) {
      return `must not contain U+0000 to U+0004 when ${CONTROL_CHARS_ESCAPED_BELOW} characters or longer (the storage's key order)`;
    }
  }
  return undefined;
}

/** Throws INVALID_ARGUMENT naming `field` when `id` cannot be a key. */
export function checkId(field: string, id: string): void {
  const problem = idProblem(id);
  if (problem !== undefined) throw invalidArgument(field, problem);
}

/** `checkId` for each of `ids`, naming `field[i]`. */
export function checkIds(field: string, ids: readonly string[] | undefined): void {
  if (ids === undefined) return;
  for (let i = 0; i < ids.length; i++) {
    const problem = idProblem(ids[i] ?? "");
    if (problem !== undefined) throw invalidArgument(`${field}[${i}]`, problem);
  }
}

/** The ids of a decision request (Allow, Check, Record, Reserve): caller, hint, and `key`, its idempotency key as used. */
export function checkDecisionIds(req: DecisionRequest, key: string): void {
  checkId("customer_id", req.customerId);
  checkId("idempotency_key", key);
  checkIds("customer_hint.refs", req.hint?.refs);
  checkIds("customer_hint.alt_ids", req.hint?.altIds);
}

/** The UTF-8 length of `s`, a lone surrogate counted as the 3-byte U+FFFD it is encoded as. */
function utf8Length(s: string): number {
  let bytes = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) bytes += 1;
    else if (c < 0x800) bytes += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      bytes += 4;
      i++;
    } else bytes += 3;
  }
  return bytes;
}

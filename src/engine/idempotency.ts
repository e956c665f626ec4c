/**
 * Idempotency (SPEC §4): a request carrying a key already decided (and not yet expired) gets the
 * stored answer and counts nothing again; the same key on a different request is a client bug
 * and an INVALID_ARGUMENT, never a silent replay of someone else's answer.
 */
import { invalidArgument } from "../errors/index.js";
import type { EngineContext } from "./context.js";
import type { CustomerHint, DecisionResult, UsageItem, Write } from "./types.js";

/**
 * Marks fingerprints that include the attributes. Earlier versions stored the bare JSON array
 * (always starting with `[`), and such records may still be inside the window after an upgrade.
 */
const WITH_ATTRIBUTES = "a:";

const byKey = ([a]: readonly [string, unknown], [b]: readonly [string, unknown]): number => (a < b ? -1 : a > b ? 1 : 0);

/**
 * Canonical text of a request: same request ⇔ same fingerprint (key order never matters).
 * Attributes are part of the request: they are copied onto the events billing reads, so a key
 * reused with other attributes must not replay an answer whose events said something else.
 */
export function fingerprint(
  op: string,
  subject: string,
  items: readonly UsageItem[],
  hint: CustomerHint | undefined,
  attributes: Readonly<Record<string, string>> | undefined,
  extra: string,
): string {
  const canonicalItems = items.map((i) => [i.entitlement, i.amount ?? null, i.unit ?? ""]);
  const canonicalHint =
    hint === undefined ? null : [hint.plan ?? "", hint.type ?? "", hint.refs ?? [], hint.altIds ?? [], Object.entries(hint.metadata ?? {}).sort(byKey)];
  // Entries as JSON arrays, not joined text: no key or value can be spelled to look like another.
  // Absent (null) stays distinct from {}: a settle without attributes inherits the reservation's.
  const canonicalAttributes = attributes === undefined ? null : Object.entries(attributes).sort(byKey);
  // The attributes go last, so the form without them is a prefix of the array (see `legacyForm`).
  return WITH_ATTRIBUTES + JSON.stringify([op, subject, canonicalItems, canonicalHint, extra, canonicalAttributes]);
}

/**
 * Why `print` is not a fingerprint any version wrote (the JSON array of `fingerprint`, with or
 * without the attributes' mark), or `undefined`. Imports check it: a record whose fingerprint no
 * request has would refuse every retry of its key as "a different request" until it expires.
 */
export function fingerprintProblem(print: string): string | undefined {
  if (print === "") return "is required";
  const json = print.startsWith(WITH_ATTRIBUTES) ? print.slice(WITH_ATTRIBUTES.length) : print;
  let parts: unknown;
  try {
    parts = JSON.parse(json);
  } catch {
    parts = undefined;
  }
  if (!Array.isArray(parts) || typeof parts[0] !== "string") return "must be a request fingerprint as the sidecar exports it";
  return undefined;
}

/** What an earlier version stored for the same request: the array without the attributes. */
function legacyForm(print: string): string {
  const parts = JSON.parse(print.slice(WITH_ATTRIBUTES.length)) as unknown[];
  return JSON.stringify(parts.slice(0, -1));
}

/**
 * The stored answer for `key`, if it was decided and has not expired; throws when the key was
 * used for a different request.
 */
export function replayed(ctx: EngineContext, key: string, print: string): DecisionResult | undefined {
  const record = ctx.state.getIdempotency(key);
  if (record === undefined || record.expiresAt <= ctx.now) return undefined;
  const stored = record.fingerprint;
  // A record from before attributes were fingerprinted can only be compared without them: a
  // retry across an upgrade replays (as it did before) instead of failing as a different request.
  const same = stored === print || (!stored.startsWith(WITH_ATTRIBUTES) && stored === legacyForm(print));
  if (!same) throw invalidArgument("idempotency_key", `key "${key}" was already used for a different request`);
  return record.result;
}

/** Remembers an answer under its key for the configured window. */
export function rememberWrite(ctx: EngineContext, key: string, print: string, result: DecisionResult): Write {
  return {
    kind: "idempotency-put",
    record: { key, fingerprint: print, expiresAt: ctx.now + ctx.options.idempotencyWindowMs, result },
  };
}

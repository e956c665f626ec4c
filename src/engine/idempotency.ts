/**
 * Idempotency (SPEC §4): a request carrying a key already decided (and not yet expired) gets the
 * stored answer and counts nothing again; the same key on a different request is a client bug
 * and an INVALID_ARGUMENT, never a silent replay of someone else's answer.
 */
import { invalidArgument } from "../errors/index.js";
import type { EngineContext } from "./context.js";
import type { CustomerHint, DecisionResult, UsageItem, Write } from "./types.js";

/** Canonical text of a request: same request ⇔ same fingerprint (key order never matters). */
export function fingerprint(op: string, subject: string, items: readonly UsageItem[], hint: CustomerHint | undefined, extra: string): string {
  const canonicalItems = items.map((i) => [i.entitlement, i.amount ?? null, i.unit ?? ""]);
  const canonicalHint =
    hint === undefined
      ? null
      : [
          hint.plan ?? "",
          hint.type ?? "",
          hint.refs ?? [],
          hint.altIds ?? [],
          Object.entries(hint.metadata ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)),
        ];
  return JSON.stringify([op, subject, canonicalItems, canonicalHint, extra]);
}

/**
 * The stored answer for `key`, if it was decided and has not expired; throws when the key was
 * used for a different request.
 */
export function replayed(ctx: EngineContext, key: string, print: string): DecisionResult | undefined {
  const record = ctx.state.getIdempotency(key);
  if (record === undefined || record.expiresAt <= ctx.now) return undefined;
  if (record.fingerprint !== print) {
    throw invalidArgument("idempotency_key", `key "${key}" was already used for a different request`);
  }
  return record.result;
}

/** Remembers an answer under its key for the configured window. */
export function rememberWrite(ctx: EngineContext, key: string, print: string, result: DecisionResult): Write {
  return {
    kind: "idempotency-put",
    record: { key, fingerprint: print, expiresAt: ctx.now + ctx.options.idempotencyWindowMs, result },
  };
}

/**
 * The policy document's vocabulary: which fields each node has, which upstream Limitr fields we
 * accept but do not enforce, and zod schemas for the scalar fields (with plain-sentence
 * messages, never raw zod output). Cross-field rules live in the compile-* modules.
 */
import { z } from "zod";
import { describeValue, joinPath, type IssueSink, type RawObject } from "./policy-issues.js";
import type { LimitMode } from "./types.js";

/** The fields limitr-sidecar understands, per node of the document. */
export const KNOWN_FIELDS = {
  root: ["policy"],
  policy: ["credits", "plans"],
  credit: ["label", "unit", "stof_units", "price", "overhead_cost"],
  price: ["amount"],
  plan: ["label", "default", "entitlements"],
  entitlement: ["limit", "scope", "description"],
  limit: ["credit", "mode", "value", "increment", "minimum", "hard_trailing", "resets", "reset_inc", "reset_sch", "thresholds"],
} as const satisfies Record<string, readonly string[]>;

/** A node of the document that has fields. */
export type NodeKind = keyof typeof KNOWN_FIELDS;

/**
 * Fields that upstream Limitr policies use for features limitr-sidecar does not enforce
 * (exchange rates, top-ups, pricing models…). They load with a warning so that an upstream
 * policy works unchanged for the features we do enforce.
 */
const UPSTREAM_FIELDS: Readonly<Partial<Record<NodeKind, readonly string[]>>> = {
  root: ["customers"],
  policy: ["exchange", "notifications", "capabilities", "estimates", "hold_ttl", "topups", "tiers", "pricing_model", "description", "label", "name", "version"],
  credit: ["description", "resets", "exchange", "topups", "hidden", "tiers", "estimates"],
  price: ["id", "currency", "pricing_model", "tiers"],
  plan: ["description", "hidden", "period", "subscription", "trial_period", "grants_apply", "price", "topups", "tiers", "pricing_model", "capabilities", "notifications"],
  entitlement: ["capabilities", "estimates", "notifications", "hidden", "label"],
  limit: ["hold_ttl", "estimates", "ewma_alpha", "notifications", "topups", "tiers", "pricing_model"],
};

function isUpstreamField(kind: NodeKind, key: string): boolean {
  return key.startsWith("governor_") || (UPSTREAM_FIELDS[kind]?.includes(key) ?? false);
}

/**
 * Warns about every field of `raw` that `kind` does not have: upstream Limitr fields as "not
 * enforced", anything else as unknown (with a suggestion when it looks like a typo).
 */
export function warnUnknownFields(raw: RawObject, kind: NodeKind, path: string, sink: IssueSink): void {
  warnUnknownKeys(Object.keys(raw), kind, path, sink);
}

function warnUnknownKeys(keys: readonly string[], kind: NodeKind, path: string, sink: IssueSink): void {
  const known: readonly string[] = KNOWN_FIELDS[kind];
  for (const key of keys) {
    if (known.includes(key)) continue;
    const at = joinPath(path, key);
    if (isUpstreamField(kind, key)) {
      sink.warning(at, `field "${key}" is not enforced by limitr-sidecar; it is ignored`);
      continue;
    }
    const guess = closest(key, known);
    sink.warning(at, `unknown field "${key}" is ignored${guess === undefined ? "" : ` (did you mean "${guess}"?)`}`);
  }
}

/**
 * Checks an entitlement's fields. Without `limit` an entitlement is an unlimited feature flag, so
 * a limit that failed to arrive there (`limits:`, or `credit`/`value` written on the entitlement
 * itself) would silently lift the limit: those are errors. Everything else unknown is a warning,
 * as `warnUnknownFields` says it; a limit field beside a `limit` is told where it belongs.
 */
export function checkEntitlementFields(raw: RawObject, path: string, sink: IssueSink): void {
  const limitFields: readonly string[] = KNOWN_FIELDS.limit;
  const known: readonly string[] = KNOWN_FIELDS.entitlement;
  const keys = Object.keys(raw);
  const misplaced = keys.filter((key) => limitFields.includes(key));
  let rest = keys.filter((key) => !misplaced.includes(key));
  if ("limit" in raw) {
    for (const key of misplaced) sink.warning(joinPath(path, key), `"${key}" is a field of limit, not of the entitlement; it is ignored here`);
  } else {
    if (misplaced.length > 0) {
      const [one, them] = misplaced.length === 1 ? ["is a field", "it"] : ["are fields", "them"];
      sink.error(path, `${misplaced.map((k) => `"${k}"`).join(", ")} ${one} of limit: put ${them} under limit: (limit: { credit: …, value: … }); without limit: the entitlement is an unlimited feature flag`);
    }
    const limitTypos = rest.filter((key) => !known.includes(key) && !isUpstreamField("entitlement", key) && closest(key, known) === "limit");
    for (const key of limitTypos) sink.error(joinPath(path, key), `unknown field "${key}" (did you mean "limit"?); without limit: the entitlement is an unlimited feature flag`);
    rest = rest.filter((key) => !limitTypos.includes(key));
  }
  warnUnknownKeys(rest, "entitlement", path, sink);
}

/** The known field within edit distance 2 of `key`, if any: catches `mdoe`, `reset_sh`. */
function closest(key: string, known: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = 3;
  for (const candidate of known) {
    const d = editDistance(key.toLowerCase(), candidate);
    if (d < bestDistance) {
      best = candidate;
      bestDistance = d;
    }
  }
  return best;
}

/** Optimal string alignment distance (Levenshtein plus adjacent transpositions). */
function editDistance(a: string, b: string): number {
  const rows: number[][] = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  const at = (i: number, j: number): number => rows[i]?.[j] ?? Number.POSITIVE_INFINITY;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let d = Math.min(at(i - 1, j) + 1, at(i, j - 1) + 1, at(i - 1, j - 1) + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d = Math.min(d, at(i - 2, j - 2) + 1);
      const row = rows[i];
      if (row) row[j] = d;
    }
  }
  return at(a.length, b.length);
}

// ───────────────────────── scalar field schemas ─────────────────────────

/** An optional display string (`label`, `unit`, `description`). */
export const textSchema = (field: string): z.ZodType<string | undefined> =>
  z.string({ error: (iss) => `${field} must be text, got ${describeValue(iss.input)}` }).optional();

/** An optional boolean flag. */
export const flagSchema = (field: string): z.ZodType<boolean | undefined> =>
  z.boolean({ error: (iss) => `${field} must be true or false, got ${describeValue(iss.input)}` }).optional();

/** The limit modes, in the order they are listed in messages. */
export const LIMIT_MODES = ["hard", "soft", "observe"] as const satisfies readonly LimitMode[];

/** `mode`: one of the limit modes. */
export const modeSchema: z.ZodType<LimitMode | undefined> = z
  .enum(LIMIT_MODES, {
    error: (iss) =>
      typeof iss.input === "string"
        ? `unknown mode "${iss.input}"; allowed: ${LIMIT_MODES.join(", ")}`
        : `mode must be one of ${LIMIT_MODES.join(", ")}, got ${describeValue(iss.input)}`,
  })
  .optional();

/** `credit` of a limit: a credit name (existence is checked against the credits). */
export const creditRefSchema: z.ZodType<string> = z
  .string({ error: (iss) => (iss.input === undefined ? "credit is required" : `credit must be the name of a credit, got ${describeValue(iss.input)}`) })
  .min(1, { error: "credit must not be empty" });

/** `scope`: a customer type; empty would silently mean "the caller", so it is rejected. */
export const scopeSchema: z.ZodType<string | undefined> = z
  .string({ error: (iss) => `scope must be a customer type such as "org", got ${describeValue(iss.input)}` })
  .trim()
  .min(1, { error: `scope must not be empty; remove it to meter on the caller, or name a customer type such as "org"` })
  .optional();

/** `thresholds` (issue 5): percents greater than zero. */
export const thresholdsSchema: z.ZodType<number[] | undefined> = z
  .array(
    z
      .number({ error: (iss) => `threshold must be a percent greater than zero, got ${describeValue(iss.input)}` })
      .positive({ error: (iss) => `threshold must be a percent greater than zero, got ${describeValue(iss.input)}` })
      .refine(Number.isFinite, { error: "threshold must be a finite percent" }),
    { error: (iss) => `thresholds must be a list of percents such as [50, 80, 100], got ${describeValue(iss.input)}` },
  )
  .optional();

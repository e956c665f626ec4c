/**
 * The stored form of the reset-rule history (`reset-rule-changes.ts`): when the data dir's first
 * policy was seen, and for each metered limit of the last policy its rule and the changes before
 * it. A store keeps it as it is given (a plain value) and hands it back at the next start, so a
 * swap the sidecar saw still dates the meters it left untouched after a restart or a crash, and a
 * rule changed while it was down is a swap dated at its first operation.
 */
import { resetRuleKey, resetRuleOfKey, type ResetRule } from "../policy/index.js";
import { keptChanges, type KnownRuleHistory, type LineageEras, type ResetRuleChange, type RuleEra } from "./reset-rule-changes.js";

/** The history as a store keeps it. */
export interface ResetRuleHistory {
  /** Epoch ms the data dir's first policy was seen. */
  readonly since: number;
  readonly lineages: readonly StoredLineage[];
}

/** One plan's limit on one entitlement. */
export interface StoredLineage {
  readonly plan: string;
  readonly entitlement: string;
  /** The key (`resetRuleKey`) of the rule in the last policy. */
  readonly rule: string;
  /** Newest first: when the rule changed, and the key of the rule before that change. */
  readonly changes: readonly { readonly at: number; readonly rule: string }[];
}

/** The tracker's history as the store keeps it (`parseRuleHistory` reads it back). */
export function storedRuleHistory(history: KnownRuleHistory): ResetRuleHistory {
  const lineages: StoredLineage[] = [];
  for (const [plan, eras] of history.eras) {
    for (const [entitlement, era] of eras) {
      const changes: { at: number; rule: string }[] = [];
      for (let c = era.change; c !== undefined; c = c.previous.change) changes.push({ at: c.at, rule: resetRuleKey(c.previous.reset) });
      lineages.push({ plan, entitlement, rule: resetRuleKey(era.reset), changes });
    }
  }
  return { since: history.since, lineages };
}

export type ParsedRuleHistory = { readonly ok: true; readonly history: KnownRuleHistory } | { readonly ok: false; readonly message: string };

/** A stored history back as the tracker's, or what is wrong with it (a damaged or foreign value). */
export function parseRuleHistory(stored: unknown): ParsedRuleHistory {
  const fail = (path: string, problem: string): ParsedRuleHistory => ({ ok: false, message: `reset-rule history: ${path} ${problem}` });
  if (!isObject(stored)) return fail("(the value)", "must be an object");
  const since = stored["since"];
  if (!isTime(since)) return fail("since", "must be a time in epoch ms");
  const lineages = stored["lineages"];
  if (!Array.isArray(lineages)) return fail("lineages", "must be a list");
  const eras = new Map<string, Map<string, RuleEra>>();
  for (let i = 0; i < lineages.length; i++) {
    const l: unknown = lineages[i];
    const at = `lineages[${i}]`;
    if (!isObject(l)) return fail(at, "must be an object");
    const { plan, entitlement, rule, changes } = l;
    if (typeof plan !== "string") return fail(`${at}.plan`, "must be a string");
    if (typeof entitlement !== "string") return fail(`${at}.entitlement`, "must be a string");
    if (eras.get(plan)?.has(entitlement) === true) return fail(at, `repeats plan "${plan}", entitlement "${entitlement}"`);
    const current = ruleOf(rule);
    if (!current.ok) return fail(`${at}.rule`, current.message);
    if (!Array.isArray(changes)) return fail(`${at}.changes`, "must be a list");
    let later = Infinity;
    const parsed: { at: number; rule: ResetRule | undefined }[] = [];
    for (let j = 0; j < changes.length; j++) {
      const c: unknown = changes[j];
      const cat = `${at}.changes[${j}]`;
      if (!isObject(c)) return fail(cat, "must be an object");
      if (!isTime(c["at"])) return fail(`${cat}.at`, "must be a time in epoch ms");
      if (c["at"] > later) return fail(`${cat}.at`, "must not be after the change listed before it (newest first)");
      later = c["at"];
      const before = ruleOf(c["rule"]);
      if (!before.ok) return fail(`${cat}.rule`, before.message);
      parsed.push({ at: c["at"], rule: before.rule });
    }
    // Built from the oldest change up: each era points at the change that began it.
    let change: ResetRuleChange | undefined;
    for (let j = parsed.length - 1; j >= 0; j--) {
      const p = parsed[j] as { at: number; rule: ResetRule | undefined };
      const previous: RuleEra = { reset: p.rule, change };
      change = { at: p.at, previous };
    }
    // A longer chain than this code keeps (written by hand, or by a later version): its oldest dropped.
    const era = keptChanges({ reset: current.rule, change });
    let planEras = eras.get(plan);
    if (planEras === undefined) eras.set(plan, (planEras = new Map()));
    planEras.set(entitlement, era);
  }
  const known: LineageEras = eras;
  return { ok: true, history: { since, eras: known } };
}

function ruleOf(key: unknown): { readonly ok: true; readonly rule: ResetRule | undefined } | { readonly ok: false; readonly message: string } {
  if (typeof key !== "string") return { ok: false, message: "must be a reset rule's key" };
  const r = resetRuleOfKey(key);
  return r.ok ? r : { ok: false, message: `is not a reset rule: ${JSON.stringify(key)}` };
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** A time a Date can hold (±8.64e15 ms). */
function isTime(v: unknown): v is number {
  return typeof v === "number" && Number.isFinite(v) && Math.abs(v) <= 8.64e15;
}

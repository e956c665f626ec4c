/**
 * Policy: a Limitr-style policy document (YAML or JSON) → a validated, compiled, immutable
 * policy. Pure: no I/O, no clock.
 */
/** Exact quantities: `Nanos` (bigint nano-units), parsing, formatting and exact arithmetic. */
export * from "./fixed.js";
/** The compiled policy's shape (`CompiledPolicy`, limits, reset rules) and policy issues. */
export type * from "./types.js";
/**
 * Meter periods under a reset rule (epoch ms, UTC): where a new meter's period starts, when a
 * period ends, and which period `now` falls in (missed periods collapse into one).
 */
export { initialPeriodStart, nextResetAfter, currentPeriodStart, sameResetRule } from "./periods.js";
/** A reset rule as the short string meter rows keep (`monthly:1`, `86400000ms`, `never`), and back. */
export { resetRuleKey, resetRuleOfKey, NEVER_RESETS, type ResetRuleKeyResult } from "./reset-rule-key.js";
/** Converts a request amount with an optional unit (`'250MB'`, `'30s'`) into a credit's units, exactly. */
export { convertAmount, type Conversion } from "./units.js";
/** Whether a request unit is known at all, for items no credit converts (feature flags, entitlements a plan lacks). */
export { unknownUnitIn } from "./units.js";
/** Parses a duration (`'30s'`, `'5min'`, `'24hr'`, `'7days'`, or a number of ms), the one grammar for durations everywhere. */
export { parseDurationMs, type DurationResult } from "./units.js";
/**
 * Policy text → document → `CompiledPolicy`: every error listed with its dotted path, unknown or
 * upstream-only Limitr fields reported as warnings.
 */
export { parsePolicyText, compilePolicy, loadPolicy, type ParseResult } from "./compile-policy.js";
/** Credits whose `stof_units` changed between two policies: their stored meters are not converted. */
export { creditUnitChanges } from "./credit-unit-changes.js";
/** Policy file bytes → text (UTF-8, a leading BOM dropped), the one decoding for `check-policy` and the watcher. */
export { decodePolicyBytes, type DecodeResult } from "./decode-policy-bytes.js";
/** Plain-text table of a compiled policy (plans × entitlements × limits), for `check-policy` and logs. */
export { summarizePolicy } from "./summarize-policy.js";

/**
 * Policy: a Limitr-style policy document (YAML or JSON) → a validated, compiled, immutable
 * policy. Pure: no I/O, no clock.
 */
export * from "./fixed.js";
export type * from "./types.js";
export { initialPeriodStart, nextResetAfter, currentPeriodStart } from "./periods.js";
export { convertAmount, type Conversion } from "./units.js";
export { parsePolicyText, compilePolicy, loadPolicy, type ParseResult } from "./compile-policy.js";

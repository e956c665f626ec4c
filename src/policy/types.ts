/**
 * The compiled policy: what a validated policy document becomes. Immutable; a reload swaps one
 * reference to a new `CompiledPolicy` and each request reads that reference once.
 */
import type { Attos, Nanos } from "./fixed.js";

/** How a limit treats usage past its value. */
export type LimitMode = "hard" | "soft" | "observe";

/** The kind of physical quantity a unit measures; plain numbers have kind `count`. */
export type UnitKind = "count" | "size" | "duration";

/** A countable unit of usage (SPEC §2 `credits`). */
export interface CompiledCredit {
  readonly name: string;
  readonly label: string;
  /** Display unit, e.g. `token`. */
  readonly unit: string;
  /** The unit meters are kept in (`MB`, `s`); undefined = plain number. */
  readonly stofUnits: string | undefined;
  readonly unitKind: UnitKind;
  /** List price per unit in USD, in attos (10^-18); undefined when the credit has no price. */
  readonly price: Attos | undefined;
  /** Provider cost per unit in USD, in attos (10^-18; 0 when absent). */
  readonly overheadCost: Attos;
}

/** When a meter's period ends (SPEC §2 `reset_inc` / `reset_sch`). */
export type ResetRule =
  | { readonly kind: "rolling"; readonly everyMs: number; readonly text: string }
  | { readonly kind: "calendar"; readonly schedule: CalendarSchedule; readonly text: string };

/** A UTC calendar schedule, parsed. */
export type CalendarSchedule =
  | { readonly kind: "hourly" }
  | { readonly kind: "daily" }
  /** 0 = Sunday … 6 = Saturday, as `Date.getUTCDay()`. */
  | { readonly kind: "weekly"; readonly weekday: number }
  /** day 1..31, clamped to the month's last day; `"last"` = the month's last day. */
  | { readonly kind: "monthly"; readonly day: number | "last" }
  /** Day N of Jan, Apr, Jul and Oct, clamped to the month's last day. */
  | { readonly kind: "quarterly"; readonly day: number }
  /** month 1..12, day 1..31 (clamped, so Feb 29 is Feb 28 in common years). */
  | { readonly kind: "yearly"; readonly month: number; readonly day: number };

/** A limit on one entitlement (SPEC §2). All quantities are in the credit's `stofUnits`. */
export interface CompiledLimit {
  readonly credit: CompiledCredit;
  readonly mode: LimitMode;
  readonly value: Nanos;
  /** The amount used when a request names none. */
  readonly increment: Nanos;
  /** Floor for the meter; a change below it is clamped. */
  readonly minimum: Nanos | undefined;
  readonly hardTrailing: boolean;
  /** undefined = the meter never resets. */
  readonly reset: ResetRule | undefined;
  /** Percent thresholds (issue 5), ascending; empty when none. */
  readonly thresholds: readonly number[];
  /**
   * Set only on the stand-in limit of a meter its customer's plan no longer meters (observe, limit
   * 0, never resets): the meter keeps the period and reset rule it was written under.
   */
  readonly unenforced?: true;
}

/** An entitlement of a plan: a feature flag (no limit) or a metered limit. */
export interface CompiledEntitlement {
  readonly name: string;
  readonly description: string;
  /** Customer type that owns the meter (`org`); undefined = the caller owns it. */
  readonly scope: string | undefined;
  readonly limit: CompiledLimit | undefined;
}

export interface CompiledPlan {
  readonly name: string;
  readonly label: string;
  readonly isDefault: boolean;
  readonly entitlements: ReadonlyMap<string, CompiledEntitlement>;
}

/** A validated, compiled policy document. */
export interface CompiledPolicy {
  /** Content hash of the source document (hex), set by whoever loaded it. */
  readonly version: string;
  readonly credits: ReadonlyMap<string, CompiledCredit>;
  readonly plans: ReadonlyMap<string, CompiledPlan>;
  /** The first plan marked `default: true`, if any. */
  readonly defaultPlan: string | undefined;
  /** Every entitlement name in any plan: tells `NOT_ENTITLED` from `UNKNOWN_ENTITLEMENT`. */
  readonly entitlementNames: ReadonlySet<string>;
}

/** One problem found in a policy document, located by a dotted path. */
export interface PolicyIssue {
  readonly kind: "error" | "warning";
  /** e.g. `policy.plans.pro.entitlements.chat.limit.credit` */
  readonly path: string;
  readonly message: string;
}

/** The result of compiling a document: a policy (possibly with warnings) or every error. */
export type CompileResult =
  | { readonly ok: true; readonly policy: CompiledPolicy; readonly warnings: readonly PolicyIssue[] }
  | { readonly ok: false; readonly issues: readonly PolicyIssue[] };

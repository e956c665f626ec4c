/**
 * The engine's domain: requests, decisions, events, stored state, and the storage port.
 * Plain data only (no classes, no functions in state), so any store can persist and reload it
 * byte-for-byte. Quantities are `Nanos` (see policy/fixed.ts).
 */
import type { LimitMode, Nanos } from "../policy/index.js";
import type { ResetRuleHistory } from "./reset-rule-history.js";

// ───────────────────────────── state ─────────────────────────────

/** A customer record (SPEC §3). `plan` empty = inherit through refs or use the default plan. */
export interface Customer {
  readonly id: string;
  readonly plan: string;
  /** `user` by default; e.g. `org`, `team`, `api_key`. */
  readonly type: string;
  /** Ids of related customers (user → team → org), in priority order. */
  readonly refs: readonly string[];
  /** Other ids (Stripe id, API key, email) that resolve to this customer everywhere. */
  readonly altIds: readonly string[];
  readonly metadata: Readonly<Record<string, string>>;
  readonly createdAt: number;
  readonly updatedAt: number;
}

/** An open hold on a meter, made by a reservation. */
export interface Hold {
  readonly reservationId: string;
  readonly amount: Nanos;
  /** Epoch ms; a hold at or past this time no longer counts. */
  readonly expiresAt: number;
}

/**
 * The holds stored with a meter: what they hold, how many, and no earlier than when the first
 * expires. Until `nextExpiry` every one of them counts, so `held` is what the meter holds;
 * decisions read only this. Each hold is a row of its own: one is read when its reservation is
 * settled or released (`StateReader.getHold`), and the expired ones once `nextExpiry` has passed
 * (`StateReader.expiredHolds`; they are dropped by the next decision that is not a Check, which
 * writes the meter for it). So what a decision reads and writes of a meter's holds grows with
 * what it adds, removes or finds expired, not with how many reservations are open on the meter.
 */
export interface HoldSummary {
  readonly held: Nanos;
  readonly count: number;
  /**
   * No stored hold expires before this; `Infinity` when there are none. A lower bound rather than
   * the earliest expiry, so that removing the earliest hold needs no look for the next one.
   */
  readonly nextExpiry: number;
}

/**
 * A meter: usage of one entitlement by one owner in the current period. Keyed by
 * (owner, entitlement). `credit` is remembered so a meter outlives its entitlement's removal.
 */
export interface Meter {
  readonly owner: string;
  readonly entitlement: string;
  readonly credit: string;
  /** Epoch ms at which the current period started. */
  readonly periodStart: number;
  readonly value: Nanos;
  /** Provider cost recorded this period, in nano-USD. */
  readonly overhead: Nanos;
  /**
   * The overage billed this period: what its meter-overage events added up to, in the credit's
   * units. A call bills only the meter's overage beyond it, so usage given back and used again is
   * billed once, whatever limits and modes the period saw. Undefined in a meter stored before it
   * was kept: then as much as its value is over the limit it is judged by.
   */
  readonly billedOverage: Nanos | undefined;
  /**
   * The reset rule `periodStart` was computed under (`resetRuleKey`): a call judging the meter by
   * another rule carries it across (reset-rule-changes.ts). Undefined in a meter stored before it
   * was kept.
   */
  readonly resetRule: string | undefined;
  /**
   * When `periodStart` and `resetRule` were last judged: the time of the decision (or plan change)
   * that wrote them. A rule change found later came after it. Undefined in a meter stored before
   * it was kept.
   */
  readonly judgedAt: number | undefined;
  /** Must describe the holds stored with the meter (`summarizeHolds`). */
  readonly holdSummary: HoldSummary;
  /** Threshold percents already reached this period (issue 5). */
  readonly thresholdsReached: readonly number[];
}

/** One line of a reservation: which meter it holds and how much. */
export interface ReservationItem {
  readonly entitlement: string;
  readonly owner: string;
  readonly amount: Nanos;
}

/** A reservation made by `reserve`, consumed by `settle` or `release`. */
export interface Reservation {
  readonly id: string;
  /** The caller's primary customer id. */
  readonly customerId: string;
  readonly items: readonly ReservationItem[];
  readonly createdAt: number;
  readonly expiresAt: number;
  readonly attributes: Readonly<Record<string, string>>;
}

/** A decided request remembered under its idempotency key. */
export interface IdempotencyRecord {
  readonly key: string;
  /** Canonical text of the request: the same key with a different request is an error. */
  readonly fingerprint: string;
  readonly expiresAt: number;
  readonly result: DecisionResult;
}

/** What `StateReader.expiredHolds` finds. */
export interface ExpiredHolds {
  readonly expired: readonly Hold[];
  readonly nextExpiry: number;
}

/** Read access to state. Reads reflect every write already handed to `StatePort.commit`. */
export interface StateReader {
  getCustomer(id: string): Customer | undefined;
  /** The primary id an alternate id belongs to. */
  resolveAltId(altId: string): string | undefined;
  getMeter(owner: string, entitlement: string): Meter | undefined;
  /** The hold a reservation placed on a meter (`expiresAt` is the reservation's), expired or not. */
  getHold(owner: string, entitlement: string, expiresAt: number, reservationId: string): Hold | undefined;
  /**
   * A meter's stored holds that expired at `now` (`expiresAt <= now`), in expiry order, and the
   * earliest expiry of the others (`Infinity` when there are none). Reads only those, plus one.
   */
  expiredHolds(owner: string, entitlement: string, now: number): ExpiredHolds;
  /** Every stored hold of a meter (empty when none), in expiry order: for export and deletion. */
  getHolds(owner: string, entitlement: string): readonly Hold[];
  /** Every stored meter of one owner, in entitlement order. */
  metersOf(owner: string): readonly Meter[];
  getReservation(id: string): Reservation | undefined;
  getIdempotency(key: string): IdempotencyRecord | undefined;
  /** Up to `limit` customers with id > `afterId` (empty = from the start), in id order. */
  listCustomers(afterId: string, limit: number): readonly Customer[];
}

/** One state change. A decision's writes are committed together or not at all. */
export type Write =
  | { readonly kind: "customer-put"; readonly customer: Customer; readonly previous: Customer | undefined }
  | { readonly kind: "customer-delete"; readonly customer: Customer }
  /** `meter.holdSummary` must describe the meter's holds once the same commit's hold writes are applied. */
  | { readonly kind: "meter-put"; readonly meter: Meter }
  /** Stores one hold of a meter; a hold is identified by (`expiresAt`, `reservationId`). */
  | { readonly kind: "hold-put"; readonly owner: string; readonly entitlement: string; readonly hold: Hold }
  | { readonly kind: "hold-delete"; readonly owner: string; readonly entitlement: string; readonly hold: Hold }
  /** Deletes the meter and its holds. */
  | { readonly kind: "meter-delete"; readonly owner: string; readonly entitlement: string }
  | { readonly kind: "reservation-put"; readonly reservation: Reservation }
  | { readonly kind: "reservation-delete"; readonly id: string }
  | { readonly kind: "idempotency-put"; readonly record: IdempotencyRecord }
  /** Replaces the stored reset-rule history (`StatePort.resetRuleHistory`). */
  | { readonly kind: "reset-rule-history"; readonly history: ResetRuleHistory };

/** What a store assigns to the events of one commit. */
export interface CommitReceipt {
  /** Sequence numbers given to the commit's events, in order. */
  readonly sequences: readonly number[];
}

/**
 * The storage port the engine needs. `commit` applies writes and appends events atomically:
 * synchronously visible to the reader (so the next decision sees them: no check-then-act race),
 * and the promise settles once they are durable. A commit with no writes and no events settles
 * after every earlier commit (a barrier). A failed commit rejects with a `LimitrError`
 * (UNAVAILABLE / RESOURCE_EXHAUSTED) and leaves none of its writes in place.
 */
export interface StatePort extends StateReader {
  commit(writes: readonly Write[], events: readonly EngineEvent[]): Promise<CommitReceipt>;
  /**
   * The reset-rule history last committed (a `reset-rule-history` write), as it was stored; the
   * engine checks it. Undefined when none was (a new data dir, or one from a version that kept none)
   * or when the one stored is stale (a writer that keeps none wrote the dir since: the LMDB store
   * sets it aside at its claim). Throws INTERNAL when what is stored cannot be decoded.
   */
  resetRuleHistory(): unknown;
}

// ───────────────────────────── requests ─────────────────────────────

/** Creates or updates the caller on first use (SPEC §3). Lists are merged, scalars replaced. */
export interface CustomerHint {
  readonly plan?: string;
  readonly type?: string;
  readonly refs?: readonly string[];
  readonly altIds?: readonly string[];
  readonly metadata?: Readonly<Record<string, string>>;
}

/** One line of usage. `amount` undefined = the limit's `increment` (1 for feature flags). */
export interface UsageItem {
  readonly entitlement: string;
  readonly amount?: number;
  /** Unit of `amount` (`MB`, `GiB`, `s`); undefined = already in the credit's units. */
  readonly unit?: string;
}

/** Allow, Check and Record take the same request. */
export interface DecisionRequest {
  readonly customerId: string;
  readonly items: readonly UsageItem[];
  readonly hint?: CustomerHint;
  readonly attributes?: Readonly<Record<string, string>>;
  readonly idempotencyKey?: string;
}

export interface ReserveRequest extends DecisionRequest {
  /** How long the hold counts; undefined = the engine default (10 min). */
  readonly ttlMs?: number;
}

export interface SettleRequest {
  readonly reservationId: string;
  /** Actual usage per entitlement; an entitlement of the reservation not listed settles at 0. */
  readonly actual: readonly UsageItem[];
  readonly attributes?: Readonly<Record<string, string>>;
  readonly idempotencyKey?: string;
}

export interface ReleaseRequest {
  readonly reservationId: string;
}

export interface UpsertCustomerInput {
  readonly id: string;
  readonly plan?: string;
  readonly type?: string;
  readonly refs?: readonly string[];
  readonly altIds?: readonly string[];
  readonly metadata?: Readonly<Record<string, string>>;
}

export interface SetCustomerPlanInput {
  readonly customerId: string;
  /** Empty = inherit / default. */
  readonly plan: string;
  /** Start every meter of the customer afresh at zero. */
  readonly resetMeters: boolean;
}

// ───────────────────────────── decisions ─────────────────────────────

/** Why a decision came out as it did (SPEC §4). */
export type AllowedReason = "OK" | "SOFT_LIMIT_EXCEEDED";
export type DeniedReason =
  | "HARD_LIMIT"
  | "NOT_ENTITLED"
  | "UNKNOWN_CUSTOMER"
  | "UNKNOWN_ENTITLEMENT"
  | "SCOPE_UNRESOLVED";
export type Reason = AllowedReason | DeniedReason;

/** A meter as reported after a call (SPEC §4: owner, value, limit, remaining, …). */
export interface MeterView {
  readonly kind: "metered";
  readonly entitlement: string;
  readonly owner: string;
  readonly credit: string;
  /** The credit's `stof_units`, or its display unit when it has none. */
  readonly unit: string;
  readonly mode: LimitMode;
  readonly value: Nanos;
  readonly limit: Nanos;
  /** limit − value − held; may be negative. */
  readonly remaining: Nanos;
  readonly held: Nanos;
  /** max(0, value − limit). */
  readonly overage: Nanos;
  readonly periodStart: number;
  /** Epoch ms of the next reset; undefined when the meter never resets. */
  readonly nextReset: number | undefined;
}

/** A feature-flag entitlement as reported: granted or not, nothing metered. */
export interface FeatureView {
  readonly kind: "feature";
  readonly entitlement: string;
  readonly granted: boolean;
}

export type ItemView = MeterView | FeatureView;

interface DecisionCommon {
  /** The caller's primary id (alt ids resolved); empty when the customer is unknown. */
  readonly customerId: string;
  /** The caller's effective plan; empty when none. */
  readonly plan: string;
  readonly policyVersion: string;
  /** One view per request item, in request order (absent for items never reached). */
  readonly items: readonly ItemView[];
  /** Set by `reserve` when allowed. */
  readonly reservationId?: string;
  readonly reservationExpiresAt?: number;
}

/** The answer to Allow, Check, Record, Reserve and Settle. */
export type DecisionResult =
  | (DecisionCommon & { readonly allowed: true; readonly reason: AllowedReason })
  | (DecisionCommon & {
      readonly allowed: false;
      readonly reason: DeniedReason;
      /** Index of the first denied item in the request. */
      readonly deniedItem: number;
    });

/** A customer with its resolved plan, as GetCustomer reports it. */
export interface CustomerView {
  readonly customer: Customer;
  /** The plan enforced now; empty when none resolves. */
  readonly effectivePlan: string;
  /** Where the effective plan came from. */
  readonly planSource: "own" | "inherited" | "default" | "none";
  /** Set when `customer.plan` names a plan the policy no longer has. */
  readonly missingPlan?: string;
}

/** What an engine operation returns: its result, the writes to commit and the events to log. */
export interface Outcome<T> {
  readonly result: T;
  readonly writes: readonly Write[];
  readonly events: readonly EngineEvent[];
  /** Set when `result` is a stored answer replayed for an idempotency key: the operation's name. */
  readonly replayed?: ReplayedOperation;
  /** Alt ids of the request's customer hint that were skipped: another customer has them. */
  readonly altIdConflicts?: readonly AltIdConflict[];
}

/**
 * A decision's customer hint named an alt id that another customer already has as its id or an
 * alt id (two code paths of an app racing to register an API key, say). The decision went on
 * for its caller without it: failing it would drop usage that happened, on every later call too.
 */
export interface AltIdConflict {
  /** The caller's primary id. */
  readonly customerId: string;
  readonly altId: string;
  /** The customer that has the alt id. */
  readonly heldBy: string;
}

/** The operations that take an idempotency key. */
export type ReplayedOperation = "allow" | "record" | "reserve" | "settle";

// ───────────────────────────── events ─────────────────────────────

/** Fields every meter event carries (SPEC §5). */
export interface MeterEventFields {
  readonly time: number;
  /** The caller's primary id. */
  readonly customerId: string;
  /** The meter's owner (differs from the caller for scoped entitlements). */
  readonly owner: string;
  readonly entitlement: string;
  readonly plan: string;
  readonly credit: string;
  readonly unit: string;
  readonly mode: LimitMode;
  readonly oldValue: Nanos;
  readonly newValue: Nanos;
  readonly limit: Nanos;
  readonly diff: Nanos;
  readonly remaining: Nanos;
  readonly overage: Nanos;
  /** overage × credit price, in nano-USD; undefined when the credit has no price. */
  readonly overagePrice: Nanos | undefined;
  readonly periodStart: number;
  readonly attributes: Readonly<Record<string, string>>;
  readonly policyVersion: string;
  readonly idempotencyKey: string;
}

/** Every event the product emits, discriminated on `type` (SPEC §5). */
export type EngineEvent =
  | ({ readonly type: "meter-changed" } & MeterEventFields)
  | ({ readonly type: "meter-overage" } & MeterEventFields)
  /** A hard denial; `newValue` is the would-be value, the meter is unchanged. */
  | ({ readonly type: "meter-limit" } & MeterEventFields)
  /** A new period began; `oldValue` is the last period's final value, `newValue` 0. */
  | ({ readonly type: "meter-reset" } & MeterEventFields)
  | ({ readonly type: "meter-threshold"; readonly threshold: number } & MeterEventFields)
  | ({ readonly type: "meter-threshold-cleared"; readonly threshold: number } & MeterEventFields)
  | { readonly type: "customer-set"; readonly time: number; readonly customer: Customer }
  | { readonly type: "customer-removed"; readonly time: number; readonly customer: Customer }
  | {
      readonly type: "customer-plan-changed";
      readonly time: number;
      readonly customerId: string;
      readonly previousPlan: string;
      readonly newPlan: string;
      readonly metersReset: boolean;
    }
  | {
      readonly type: "policy-applied";
      readonly time: number;
      readonly policyVersion: string;
      readonly source: string;
      /** Plans of the previous policy that this one lacks: their customers fall back. */
      readonly removedPlans: readonly string[];
    }
  | {
      readonly type: "policy-rejected";
      readonly time: number;
      readonly policyVersion: string;
      readonly source: string;
      readonly errors: readonly string[];
    };

export type EventType = EngineEvent["type"];

/** An event as logged: with its sequence number. */
export interface StoredEvent {
  readonly seq: number;
  readonly event: EngineEvent;
}

/**
 * The durable event log, as readers see it (implemented by the store). Events appear here only
 * once committed; listeners are called after each durable commit, in sequence order.
 */
export interface EventLog {
  /** Up to `limit` events with seq >= `fromSeq`, in order. */
  readEvents(fromSeq: number, limit: number): readonly StoredEvent[];
  /** The newest committed sequence number (0 when the log is empty). */
  lastSequence(): number;
  /** The oldest retained sequence number (lastSequence() + 1 when empty). */
  firstSequence(): number;
  /** Calls `listener` with each durably committed group of events; returns an unsubscribe. */
  subscribe(listener: (events: readonly StoredEvent[]) => void): () => void;
  /**
   * Asks the log to keep the events committed from now on in memory, for a reader that fell
   * behind and will read them back, until the returned release is called (twice counts once).
   * Only where `readEvents` reads from changes, never what it returns. Kept for no one, every
   * event would outlive its decision, which costs every Allow in garbage collection.
   */
  keepRecent(): () => void;
}

/** One line of an export / import (JSON Lines): every kind of stored state. */
export type StateRecord =
  | { readonly kind: "customer"; readonly customer: Customer }
  | { readonly kind: "meter"; readonly meter: Meter; readonly holds: readonly Hold[] }
  | { readonly kind: "reservation"; readonly reservation: Reservation }
  | { readonly kind: "idempotency"; readonly record: IdempotencyRecord }
  /** How far the event log had numbered its events: an import numbers the next event after it. */
  | { readonly kind: "event-log"; readonly lastSequence: number };

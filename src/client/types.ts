/**
 * The TypeScript client's public types: plain objects with numbers, Dates and readable names
 * instead of generated messages, enums and Timestamps.
 */

/** Why a decision came out as it did (the proto `Reason` without its prefix). */
export type ReasonName =
  | "OK"
  | "SOFT_LIMIT_EXCEEDED"
  | "HARD_LIMIT"
  | "NOT_ENTITLED"
  | "UNKNOWN_CUSTOMER"
  | "UNKNOWN_ENTITLEMENT"
  | "SCOPE_UNRESOLVED"
  | "UNSPECIFIED";

/** Event type names as in the spec (`meter-overage`, `customer-set`, …). */
export type EventTypeName =
  | "meter-changed"
  | "meter-overage"
  | "meter-limit"
  | "meter-reset"
  | "meter-threshold"
  | "meter-threshold-cleared"
  | "customer-set"
  | "customer-removed"
  | "customer-plan-changed"
  | "policy-applied"
  | "policy-rejected";

/**
 * An amount: a number in the credit's units, or a string with a unit such as `'250MB'`,
 * `'1.5GB'`, `'2GiB'`, `'30s'` (converted by the server; an unknown unit is INVALID_ARGUMENT).
 */
export type Amount = number | string;

/** One line of usage. Without `amount` the limit's increment (usually 1) is used. */
export interface UsageInput {
  readonly entitlement: string;
  readonly amount?: Amount;
  /** Unit of a numeric `amount` (ignored when `amount` is a string that names its own unit). */
  readonly unit?: string;
}

/** Creates or updates the calling customer on first use (see CustomerHint in the proto). */
export interface CustomerHintInput {
  readonly plan?: string;
  readonly type?: string;
  readonly refs?: readonly string[];
  readonly altIds?: readonly string[];
  readonly metadata?: Readonly<Record<string, string>>;
}

/** Options every call accepts. */
export interface CallOptions {
  /** Deadline of each attempt in milliseconds (default: the client's `timeoutMs`, 1000; `Infinity` for none). */
  readonly timeoutMs?: number;
  /** Retries after UNAVAILABLE / DEADLINE_EXCEEDED / connection errors (default: the client's). */
  readonly retries?: number;
  /** Cancels the call (and its retries). */
  readonly signal?: AbortSignal;
}

/** Options of Allow, Check, Record, Reserve. */
export interface DecisionOptions extends CallOptions {
  /** Caller context copied into events, e.g. `{ model: 'gpt-4o' }`. */
  readonly attributes?: Readonly<Record<string, string>>;
  /** Creates or updates the customer on first use. */
  readonly customer?: CustomerHintInput;
  /**
   * Defaults to a fresh UUIDv7 per call (also when ""), reused by its retries. To retry a failed
   * call yourself, pass the failure's `LimitrError.idempotencyKey`: a call that timed out or lost
   * its connection may have been counted, and only the same key keeps a retry from counting again.
   */
  readonly idempotencyKey?: string;
}

/** Options of Reserve. */
export interface ReserveOptions extends DecisionOptions {
  /** How long the hold counts if neither settled nor released (default: the server's, 10 min). */
  readonly ttlMs?: number;
}

/** Options of Settle. */
export interface SettleOptions extends CallOptions {
  readonly attributes?: Readonly<Record<string, string>>;
  /** As for Allow: a fresh UUIDv7 by default; the failure's `LimitrError.idempotencyKey` to retry it yourself. */
  readonly idempotencyKey?: string;
}

/** The state of one entitlement's meter (quantities in `unit`). */
export interface MeterState {
  readonly entitlement: string;
  readonly kind: "metered" | "feature" | "unspecified";
  /** For a feature flag, whether the plan grants it; always true for a metered item. */
  readonly granted: boolean;
  /** Meter owner: the caller, or for a scoped entitlement e.g. the org. */
  readonly owner: string;
  readonly credit: string;
  readonly unit: string;
  readonly mode: "hard" | "soft" | "observe" | "unspecified";
  readonly value: number;
  readonly limit: number;
  /** limit − value − held; negative when over. */
  readonly remaining: number;
  readonly held: number;
  readonly overage: number;
  readonly periodStart: Date | undefined;
  /** When the meter next resets; undefined when it never resets. */
  readonly nextReset: Date | undefined;
}

/**
 * A decision (Allow, Check, Record, Settle). The top-level `value`…`nextReset` repeat the state
 * of the denied item, else of the first item: what a single-item call wants to read.
 */
export interface Decision {
  readonly allowed: boolean;
  readonly reason: ReasonName;
  /** Index of the first denied item; undefined when allowed. */
  readonly deniedItem: number | undefined;
  readonly items: readonly MeterState[];
  /** The caller's primary id (alt ids resolved); empty when unknown. */
  readonly customerId: string;
  readonly plan: string;
  readonly policyVersion: string;
  readonly entitlement: string | undefined;
  readonly value: number | undefined;
  readonly limit: number | undefined;
  readonly remaining: number | undefined;
  readonly overage: number | undefined;
  readonly unit: string | undefined;
  readonly nextReset: Date | undefined;
}

/** A Reserve decision: when allowed, the reservation to settle or release. */
export interface Reservation extends Decision {
  readonly reservationId: string | undefined;
  readonly expiresAt: Date | undefined;
}

/** A customer record, with the plan it is enforced on. */
export interface Customer {
  readonly id: string;
  /** Its own plan; empty = inherited or default. */
  readonly plan: string;
  readonly type: string;
  readonly refs: readonly string[];
  readonly altIds: readonly string[];
  readonly metadata: Readonly<Record<string, string>>;
  readonly createdAt: Date | undefined;
  readonly updatedAt: Date | undefined;
  readonly effectivePlan: string;
  readonly planSource: "own" | "inherited" | "default" | "none" | "unspecified";
  readonly missingPlan: string;
}

/** Fields of UpsertCustomer: absent `plan`/`type` keep the stored ones; lists and metadata replace. */
export interface CustomerInput {
  readonly id: string;
  readonly plan?: string;
  readonly type?: string;
  readonly refs?: readonly string[];
  readonly altIds?: readonly string[];
  readonly metadata?: Readonly<Record<string, string>>;
}

/** The policy in force and the latest reload attempts. */
export interface PolicyStatus {
  readonly version: string;
  readonly appliedAt: Date | undefined;
  readonly source: string;
  readonly lastErrors: readonly string[];
  readonly lastRejectedAt: Date | undefined;
  readonly rejectionsSinceApplied: number;
}

/** The payload of a `meter-*` event (quantities in `unit`). */
export interface MeterEventData {
  readonly customerId: string;
  readonly owner: string;
  readonly entitlement: string;
  readonly plan: string;
  readonly credit: string;
  readonly unit: string;
  readonly mode: MeterState["mode"];
  readonly oldValue: number;
  readonly newValue: number;
  readonly limit: number;
  readonly diff: number;
  readonly remaining: number;
  readonly overage: number;
  /** overage × the credit's price in USD; undefined when the credit has no price. */
  readonly overagePrice: number | undefined;
  readonly periodStart: Date | undefined;
  readonly attributes: Readonly<Record<string, string>>;
  readonly policyVersion: string;
  readonly idempotencyKey: string;
  readonly threshold: number | undefined;
}

/** One event of the log. Exactly one payload field is set, according to `type`. */
export interface LimitrEvent {
  readonly kind: "event";
  /** Position in the log; resume with `sequence + 1`. */
  readonly sequence: number;
  readonly type: EventTypeName;
  readonly time: Date | undefined;
  readonly meter?: MeterEventData;
  /** For customer-set and customer-removed. */
  readonly customer?: Customer;
  readonly planChanged?: { readonly customerId: string; readonly previousPlan: string; readonly newPlan: string; readonly metersReset: boolean };
  readonly policyApplied?: { readonly policyVersion: string; readonly source: string; readonly removedPlans: readonly string[] };
  readonly policyRejected?: { readonly policyVersion: string; readonly source: string; readonly errors: readonly string[] };
}

/** Sent instead of a silent gap: events from `requestedSequence` were pruned by retention. */
export interface EventsLost {
  readonly kind: "events-lost";
  readonly requestedSequence: number;
  /** Where delivery resumes. */
  readonly firstAvailableSequence: number;
}

/** What the events iterator yields. */
export type WatchItem = LimitrEvent | EventsLost;

/** Options of `events()`. */
export interface WatchOptions {
  /** Only these event types; empty/absent = all. */
  readonly types?: readonly EventTypeName[];
  /** Only events about this customer (primary or alt id). */
  readonly customerId?: string;
  /** Only meter events of these entitlements. */
  readonly entitlements?: readonly string[];
  /**
   * First sequence to deliver (replays stored events first). Absent = only new events; to never
   * miss one across restarts of your process, persist `sequence + 1` and pass it here.
   */
  readonly fromSequence?: number;
  /**
   * How long the sidecar may hold live events to send more of them per message (milliseconds,
   * default 0 = at once, at most 10,000). Events are still yielded one at a time; a consumer that
   * does not need them within milliseconds (billing, a data pipeline) saves the sidecar most of
   * its per-message cost with e.g. 100.
   */
  readonly maxBatchDelayMs?: number;
  /**
   * Called with the stream's position whenever the sidecar reports it: on each (re)subscription,
   * and after quiet stretches in which it went past events that did not match the filters.
   * Every matching event below it has been yielded, so it is a cursor to persist when no event
   * has arrived to give one: a consumer that restarts and passes it as `fromSequence` misses
   * nothing and rereads nothing.
   */
  readonly onPosition?: (nextSequence: number) => void;
  /** Ends the iteration. */
  readonly signal?: AbortSignal;
  /**
   * Reconnect after UNAVAILABLE or a lost connection, resuming after the last delivered event
   * (default true). Consecutive failed attempts allowed before giving up: default unlimited.
   */
  readonly reconnect?: boolean;
  readonly maxReconnectAttempts?: number;
}

/** Options of `createLimitrClient`. */
export interface LimitrClientOptions {
  /** `HOST:PORT`, `http://HOST:PORT` or `unix:/path/to.sock` (the sidecar's gRPC address). */
  readonly address: string;
  /** Deadline of each attempt in milliseconds (default 1000; `Infinity` for none). Streams have none. */
  readonly timeoutMs?: number;
  /** Retries after UNAVAILABLE / DEADLINE_EXCEEDED / connection errors (default 3). */
  readonly retries?: number;
  /** First backoff in milliseconds, doubled per retry with jitter (default 50). */
  readonly initialBackoffMs?: number;
  /** Longest backoff in milliseconds (default 1000). */
  readonly maxBackoffMs?: number;
  /** Called before each retry or reconnect (logging, metrics). */
  readonly onRetry?: (info: RetryInfo) => void;
}

/** What `onRetry` is told. */
export interface RetryInfo {
  /** RPC name, e.g. `Allow`, `WatchEvents`. */
  readonly method: string;
  /** 1 for the first retry. */
  readonly attempt: number;
  readonly delayMs: number;
  readonly error: Error;
}

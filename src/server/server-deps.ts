/**
 * What the transport needs from the rest of the process. The composition root (src/cli) builds
 * these; the server holds no business rule and reaches state only through them.
 */
import type { Engine, EventLog, EventType, StateRecord, StoredEvent } from "../engine/index.js";

/** Structured logger (a subset of the CLI's JSON-lines logger, so that one fits as is). */
export interface ServerLogger {
  info(msg: string, fields?: Readonly<Record<string, unknown>>): void;
  warn(msg: string, fields?: Readonly<Record<string, unknown>>): void;
  error(msg: string, fields?: Readonly<Record<string, unknown>>): void;
}

/** The policy in force and the latest reload attempts, as GetPolicyStatus reports them. */
export interface PolicyStatus {
  /** Content hash of the policy in force; empty before any policy was loaded. */
  readonly version: string;
  /** Epoch ms at which it was applied; undefined before any policy was loaded. */
  readonly appliedAt: number | undefined;
  /** Path of the document it came from. */
  readonly source: string;
  /** Every error of the most recent rejected document; empty when the latest attempt succeeded. */
  readonly lastErrors: readonly string[];
  /** Epoch ms of the most recent rejection; undefined when none since start-up. */
  readonly lastRejectedAt: number | undefined;
  /** Rejected attempts since the policy in force was applied. */
  readonly rejectionsSinceApplied: number;
}

/**
 * An audit query over the event log. Filters combine with AND; `customerId` is the
 * customer's primary id (the server resolves alt ids) and matches the caller, the meter owner
 * or the subject of a customer event.
 */
export interface EventQuery {
  readonly customerId: string | undefined;
  readonly entitlements: readonly string[];
  readonly types: readonly EventType[];
  /** Epoch ms, inclusive. */
  readonly fromTime: number | undefined;
  /** Epoch ms, exclusive. */
  readonly toTime: number | undefined;
  /** Only events with seq > afterSequence. */
  readonly afterSequence: number;
  /** Most events to return. */
  readonly limit: number;
}

/** A page of an event query. */
export interface EventPage {
  readonly events: readonly StoredEvent[];
  /** `afterSequence` of the next page; undefined when the query reached the newest event. */
  readonly nextAfterSequence: number | undefined;
}

/** Bulk state access for the admin API (implemented by the store). */
export interface StateAdmin {
  /** The event log's position and every stored customer, meter, reservation and idempotency key, from one consistent snapshot. */
  exportState(): Iterable<StateRecord> | AsyncIterable<StateRecord>;
  /**
   * Stores the records (same key = replaced); resolves with how many were stored. A refused
   * record's error names its field under `fieldOf(index)` (`requests[3].record`).
   */
  importState(records: AsyncIterable<StateRecord>, fieldOf: (index: number) => string): Promise<{ readonly count: number }>;
  /**
   * Audit query. Optional: without it the server scans the event log (`scanEventLog`), which is
   * correct but reads every event after the page token; a store with indexes should provide it.
   */
  listEvents?(query: EventQuery): EventPage | Promise<EventPage>;
}

/** Everything `createSidecarServer` needs. */
export interface SidecarServerDeps {
  /** Decides; every decision and admin RPC is one call on it. */
  readonly engine: Engine;
  /** The durable event log WatchEvents replays and follows. */
  readonly events: EventLog;
  /** The live policy status (called per GetPolicyStatus). */
  readonly policyStatus: () => PolicyStatus;
  readonly state: StateAdmin;
  readonly logger: ServerLogger;
  /** Largest accepted request message in bytes; larger is INVALID_ARGUMENT. Default 1 MiB. */
  readonly maxMessageBytes?: number;
  /**
   * Events buffered in memory per WatchEvents subscriber before it is switched to reading the
   * stored log (catch-up). Default 1024.
   */
  readonly watchBufferEvents?: number;
  /**
   * Told how every unary call ended, on whichever port it came (metrics). It wraps the one
   * `ServiceImpl` both transports serve, so each call is observed exactly once. Must not throw.
   */
  readonly callObserver?: CallObserver;
}

/** How a unary call ended, as `SidecarServerDeps.callObserver` sees it. */
export interface CallEnd {
  /** The method name (`Allow`, `UpsertCustomer`); unique across the limitr services. */
  readonly rpc: string;
  /** `connect`, `grpc-web` (HTTP port) or `grpc` (gRPC port). */
  readonly protocol: string;
  /** allowed/denied for decisions (Allow, Check, Record, Reserve, Settle), ok otherwise, or error. */
  readonly outcome: "allowed" | "denied" | "ok" | "error";
  /** The decision's reason name (`OK`, `HARD_LIMIT`…), for decisions only. */
  readonly reason: string | undefined;
  /** `ok`, or the Connect code name of the error (`invalid_argument`, `not_found`…). */
  readonly code: string;
  /** Wall time from the handler's start to its answer (or error). */
  readonly seconds: number;
}

/** Observes calls (see `SidecarServerDeps.callObserver`). */
export interface CallObserver {
  callEnded(call: CallEnd): void;
}

/** The WatchEvents subscribers right now (both ports). */
export interface WatchStats {
  readonly subscribers: number;
  /** Largest lag, in events: newest committed sequence − the last one a subscriber got past. */
  readonly maxLagEvents: number;
  /** Sum of every subscriber's lag, in events. */
  readonly totalLagEvents: number;
}

/** Default for `SidecarServerDeps.maxMessageBytes`. */
export const DEFAULT_MAX_MESSAGE_BYTES = 1024 * 1024;

/** Default for `SidecarServerDeps.watchBufferEvents`. */
export const DEFAULT_WATCH_BUFFER_EVENTS = 1024;

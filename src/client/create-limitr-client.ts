/**
 * `createLimitrClient`: the sidecar's DecisionService and AdminService over gRPC (HTTP/2: unary
 * calls by hand, the event stream via connect-node's gRPC transport, one connection), with
 * readable results, a deadline per attempt, retries with backoff, and an idempotency key on every
 * mutating call so a retry never counts twice.
 */
import { setMaxListeners } from "node:events";
import { connect as netConnect, type Socket } from "node:net";
import { create } from "@bufbuild/protobuf";
import { DurationSchema } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { AdminService } from "../gen/limitr/v1/admin_pb.js";
import { DecisionService } from "../gen/limitr/v1/decision_pb.js";
import { callWithRetry, type RetryPolicy } from "./call-with-retry.js";
import { createUnaryCaller } from "./grpc-unary.js";
import { createKeyGenerator } from "./idempotency-key.js";
import { LimitrError } from "./limitr-error.js";
import { date, toCustomer, toCustomerHint, toDecision, toMeterState, toPolicyStatus, toUsageItems } from "./map-messages.js";
import type {
  Amount,
  CallOptions,
  Customer,
  CustomerInput,
  Decision,
  DecisionOptions,
  LimitrClientOptions,
  MeterState,
  PolicyStatus,
  Reservation,
  ReserveOptions,
  SettleOptions,
  UsageInput,
  WatchItem,
  WatchOptions,
} from "./types.js";
import { watchEvents } from "./watch-events.js";

/** A connection to one sidecar. Create one per process and share it; `close()` when done. */
export interface LimitrClient {
  /** Decides and, when allowed, counts: one entitlement (`amount` defaults to the limit's increment). */
  allow(customerId: string, entitlement: string, amount?: Amount, options?: DecisionOptions): Promise<Decision>;
  /** Decides several items all-or-nothing. */
  allow(customerId: string, items: readonly UsageInput[], options?: DecisionOptions): Promise<Decision>;
  /** What `allow` would answer now; changes nothing. */
  check(customerId: string, entitlement: string, amount?: Amount, options?: DecisionOptions): Promise<Decision>;
  check(customerId: string, items: readonly UsageInput[], options?: DecisionOptions): Promise<Decision>;
  /** Counts usage that already happened (never denied by a limit; past it is overage). */
  record(customerId: string, entitlement: string, amount?: Amount, options?: DecisionOptions): Promise<Decision>;
  record(customerId: string, items: readonly UsageInput[], options?: DecisionOptions): Promise<Decision>;
  /** Holds room for usage about to happen; settle or release the returned `reservationId`. */
  reserve(customerId: string, entitlement: string, amount?: Amount, options?: ReserveOptions): Promise<Reservation>;
  reserve(customerId: string, items: readonly UsageInput[], options?: ReserveOptions): Promise<Reservation>;
  /** Replaces a reservation's holds with the actual usage (an entitlement not listed settles at 0). */
  settle(reservationId: string, entitlement: string, amount: Amount, options?: SettleOptions): Promise<Decision>;
  settle(reservationId: string, actual: readonly UsageInput[], options?: SettleOptions): Promise<Decision>;
  /** Drops a reservation; false when it no longer existed (releasing twice is harmless; after a retry an earlier attempt may have dropped it). */
  release(reservationId: string, options?: CallOptions): Promise<boolean>;
  /** Reads meters (all of the plan's entitlements when none are named). */
  getMeters(customerId: string, entitlements?: readonly string[], options?: CallOptions): Promise<MeterState[]>;
  /** Subscribes to events; reconnects and resumes on its own. Break out of the loop to stop. */
  events(options?: WatchOptions): AsyncIterable<WatchItem>;
  /** Creates a customer or replaces its fields. */
  upsertCustomer(customer: CustomerInput, options?: CallOptions): Promise<Customer>;
  /** Reads a customer by primary or alt id; undefined when it does not exist. */
  getCustomer(customerId: string, options?: CallOptions): Promise<Customer | undefined>;
  /** Deletes a customer; the record as it was, or undefined when it did not exist (after a retry: or an earlier attempt deleted it). */
  deleteCustomer(customerId: string, options?: CallOptions): Promise<Customer | undefined>;
  /**
   * Moves a customer to another plan (empty = inherit/default), keeping meters unless `resetMeters`.
   * With `resetMeters` it is retried only when the sidecar provably never saw it (connection or
   * stream refused): a reset is not idempotent, so after a timeout or a lost connection it fails
   * and the caller checks.
   */
  setCustomerPlan(customerId: string, plan: string, options?: CallOptions & { readonly resetMeters?: boolean }): Promise<Customer>;
  /** The policy in force and the latest reload attempts. */
  getPolicyStatus(options?: CallOptions): Promise<PolicyStatus>;
  /** Closes the connection; open event iterators end, calls in flight fail with CANCELLED. */
  close(): void;
}

/** Creates a client for the sidecar at `options.address`. Connects lazily on the first call. */
export function createLimitrClient(options: LimitrClientOptions): LimitrClient {
  const { baseUrl, nodeOptions } = parseAddress(options.address);
  const sessionManager = new Http2SessionManager(baseUrl, {}, nodeOptions);
  // Unary calls go by hand over the shared connection (grpc-unary.ts says why); the event stream
  // keeps connect's transport, whose cost per call does not matter for one long-lived stream.
  const unary = createUnaryCaller(sessionManager);
  const decision = DecisionService.method;
  const admin = AdminService.method;
  const watchClient = createClient(DecisionService, createGrpcTransport({ baseUrl, sessionManager }));
  const closedCtl = new AbortController();
  const newIdempotencyKey = createKeyGenerator();
  /**
   * The caller's idempotency key, or a new one. An empty key is no key to the sidecar, and a call
   * without one would count twice if retried after a lost answer, so "" gets a new key too.
   */
  const keyOf = (o: { readonly idempotencyKey?: string | undefined } | undefined): string => o?.idempotencyKey || newIdempotencyKey();
  // Every call in flight listens on this signal (and removes its listener when it ends), so more
  // than ten at once is normal use, not the leak Node warns about past ten listeners.
  setMaxListeners(0, closedCtl.signal);
  const retry: RetryPolicy = {
    retries: options.retries ?? 3,
    initialBackoffMs: options.initialBackoffMs ?? 50,
    maxBackoffMs: options.maxBackoffMs ?? 1000,
    onRetry: options.onRetry,
  };
  const defaultTimeoutMs = options.timeoutMs ?? 1000;

  /**
   * Runs `fn` with the per-attempt deadline and the retry policy, the request fixed by the caller.
   * `idempotent: false` for a request that must not run twice: retried only if it never left.
   * `idempotencyKey`, the request's, goes on the error, for the caller's own retry.
   */
  function run<T>(
    method: string,
    o: CallOptions | undefined,
    fn: (call: { timeoutMs: number; signal: AbortSignal }) => Promise<T>,
    idempotent = true,
    idempotencyKey?: string,
  ): Promise<T> {
    if (closedCtl.signal.aborted) return Promise.reject(new LimitrError(`${method}: client is closed`, "CANCELLED", method, 0));
    const timeoutMs = o?.timeoutMs ?? defaultTimeoutMs;
    if (typeof timeoutMs !== "number" || Number.isNaN(timeoutMs)) {
      return Promise.reject(new TypeError(`timeoutMs must be a number of milliseconds (Infinity for none), got ${String(timeoutMs)}`));
    }
    const signal = o?.signal ? AbortSignal.any([o.signal, closedCtl.signal]) : closedCtl.signal;
    // A deadline already past fails every attempt alike: no retry.
    const policy = timeoutMs <= 0 ? { ...retry, retries: 0 } : o?.retries === undefined ? retry : { ...retry, retries: o.retries };
    return callWithRetry(method, policy, signal, () => fn({ timeoutMs, signal }), idempotent, idempotencyKey);
  }

  const itemsOf = (what: string | readonly UsageInput[], amount: Amount | undefined): readonly UsageInput[] =>
    typeof what === "string" ? [amount === undefined ? { entitlement: what } : { entitlement: what, amount }] : what;

  /** The common request of Allow/Check/Record/Reserve, with its idempotency key fixed once. */
  const decisionRequest = (customerId: string, items: readonly UsageInput[], o: DecisionOptions | undefined) => {
    const hint = toCustomerHint(o?.customer);
    return {
      customerId,
      items: toUsageItems(items),
      ...(hint === undefined ? {} : { customerHint: hint }),
      attributes: { ...o?.attributes },
      idempotencyKey: keyOf(o),
    };
  };

  /** Splits the (entitlement, amount, options) and (items, options) call shapes. */
  const args = <O>(what: string | readonly UsageInput[], a: Amount | O | undefined, b: O | undefined): [readonly UsageInput[], O | undefined] =>
    typeof what === "string" ? [itemsOf(what, a as Amount | undefined), b] : [what, a as O | undefined];

  const notFoundToUndefined = (e: unknown): undefined => {
    if (e instanceof LimitrError && e.code === "NOT_FOUND") return undefined;
    throw e;
  };

  const client: LimitrClient = {
    allow(customerId: string, what: string | readonly UsageInput[], a?: Amount | DecisionOptions, b?: DecisionOptions) {
      return rejecting(() => {
        const [items, o] = args(what, a, b);
        const req = decisionRequest(customerId, items, o);
        return run("Allow", o, (c) => unary(decision.allow, req, c), true, req.idempotencyKey).then(toDecision);
      });
    },
    check(customerId: string, what: string | readonly UsageInput[], a?: Amount | DecisionOptions, b?: DecisionOptions) {
      return rejecting(() => {
        const [items, o] = args(what, a, b);
        const req = { ...decisionRequest(customerId, items, o), idempotencyKey: o?.idempotencyKey ?? "" };
        return run("Check", o, (c) => unary(decision.check, req, c), true, req.idempotencyKey).then(toDecision);
      });
    },
    record(customerId: string, what: string | readonly UsageInput[], a?: Amount | DecisionOptions, b?: DecisionOptions) {
      return rejecting(() => {
        const [items, o] = args(what, a, b);
        const req = decisionRequest(customerId, items, o);
        return run("Record", o, (c) => unary(decision.record, req, c), true, req.idempotencyKey).then(toDecision);
      });
    },
    reserve(customerId: string, what: string | readonly UsageInput[], a?: Amount | ReserveOptions, b?: ReserveOptions) {
      return rejecting(() => {
        const [items, o] = args(what, a, b);
        const req = {
          ...decisionRequest(customerId, items, o),
          ...(o?.ttlMs === undefined ? {} : { ttl: msToDuration(o.ttlMs) }),
        };
        return run("Reserve", o, (c) => unary(decision.reserve, req, c), true, req.idempotencyKey).then((r) => ({
          ...toDecision(r),
          reservationId: r.reservationId || undefined,
          expiresAt: date(r.reservationExpiresAt),
        }));
      });
    },
    settle(reservationId: string, what: string | readonly UsageInput[], a?: Amount | SettleOptions, b?: SettleOptions) {
      return rejecting(() => {
        const [actual, o] = args(what, a, b);
        const req = { reservationId, actual: toUsageItems(actual), attributes: { ...o?.attributes }, idempotencyKey: keyOf(o) };
        return run("Settle", o, (c) => unary(decision.settle, req, c), true, req.idempotencyKey).then(toDecision);
      });
    },
    release(reservationId, o) {
      // Retried like the rest (the reservation ends up released either way); after a retry,
      // false may mean an earlier attempt released it (docs/clients.md).
      return run("Release", o, (c) => unary(decision.release, { reservationId }, c)).then((r) => r.released);
    },
    getMeters(customerId, entitlements = [], o) {
      return run("GetMeters", o, (c) => unary(decision.getMeters, { customerId, entitlements: [...entitlements] }, c)).then((r) => r.meters.map(toMeterState));
    },
    events(o = {}) {
      return { [Symbol.asyncIterator]: () => watchEvents(watchClient, o, retry, closedCtl.signal) };
    },
    upsertCustomer(cu, o) {
      const req = {
        customerId: cu.id,
        ...(cu.plan === undefined ? {} : { plan: cu.plan }),
        ...(cu.type === undefined ? {} : { type: cu.type }),
        refs: [...(cu.refs ?? [])],
        altIds: [...(cu.altIds ?? [])],
        metadata: { ...cu.metadata },
      };
      return run("UpsertCustomer", o, (c) => unary(admin.upsertCustomer, req, c)).then((r) => toCustomer(required(r.customer, "UpsertCustomer")));
    },
    getCustomer(customerId, o) {
      return run("GetCustomer", o, (c) => unary(admin.getCustomer, { customerId }, c))
        .then((r) => toCustomer(required(r.customer, "GetCustomer")))
        .catch(notFoundToUndefined);
    },
    deleteCustomer(customerId, o) {
      // Not retried once it may have reached the sidecar: had an attempt committed, a first use
      // of the id meanwhile (another instance's Allow) creates the customer again, and a retry
      // would delete that one and the usage counted on it.
      return run("DeleteCustomer", o, (c) => unary(admin.deleteCustomer, { customerId }, c), false)
        .then((r) => toCustomer(required(r.customer, "DeleteCustomer")))
        .catch(notFoundToUndefined);
    },
    setCustomerPlan(customerId, plan, o) {
      const req = { customerId, plan, resetMeters: o?.resetMeters ?? false };
      // A plan change alone is idempotent (the same plan again); a reset is not and has no key: a
      // retry after an attempt that committed would wipe the usage counted in between.
      return run("SetCustomerPlan", o, (c) => unary(admin.setCustomerPlan, req, c), !req.resetMeters).then((r) =>
        toCustomer(required(r.customer, "SetCustomerPlan")),
      );
    },
    getPolicyStatus(o) {
      return run("GetPolicyStatus", o, (c) => unary(admin.getPolicyStatus, {}, c)).then(toPolicyStatus);
    },
    close() {
      closedCtl.abort(new ConnectError("client closed", Code.Canceled));
      sessionManager.abort();
    },
  } as LimitrClient;
  return client;
}

/** `f()`, with what it throws (bad arguments) turned into a rejection, as the method's type says. */
function rejecting<T>(f: () => Promise<T>): Promise<T> {
  try {
    return f();
  } catch (e) {
    return Promise.reject(e as Error);
  }
}

function required<T>(v: T | undefined, method: string): T {
  if (v === undefined) throw new LimitrError(`${method}: the response carries no customer`, "INTERNAL", method, 1);
  return v;
}

function msToDuration(ms: number) {
  if (!(ms > 0) || !Number.isFinite(ms)) throw new TypeError(`ttlMs must be a positive number of milliseconds, got ${ms}`);
  let seconds = Math.floor(ms / 1000);
  let nanos = Math.round((ms - seconds * 1000) * 1e6);
  // 1999.9999999 ms rounds to 1 s + 1e9 ns, which is not a Duration: carry it.
  if (nanos >= 1e9) {
    seconds += 1;
    nanos -= 1e9;
  }
  return create(DurationSchema, { seconds: BigInt(seconds), nanos });
}

/** `HOST:PORT`, `http://HOST:PORT` or `unix:/path` → the transport's base URL and socket options. */
function parseAddress(address: string): { baseUrl: string; nodeOptions: { createConnection?: () => Socket } } {
  if (address.startsWith("unix:")) {
    const path = address.slice("unix:".length).replace(/^\/\/(?=\/)/, "");
    return { baseUrl: "http://localhost", nodeOptions: { createConnection: () => netConnect(path) } };
  }
  if (/^https?:\/\//.test(address)) return { baseUrl: address, nodeOptions: {} };
  return { baseUrl: `http://${address}`, nodeOptions: {} };
}

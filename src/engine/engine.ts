/**
 * The engine as the transports see it: async operations that decide with the pure rules, commit
 * the outcome through the storage port, and answer only after the commit is durable.
 * Both gRPC (grpc-js) and Connect (connect-node) handlers call exactly this.
 */
import type { CompiledPolicy } from "../policy/index.js";
import type {
  AltIdConflict,
  Customer,
  CustomerView,
  DecisionRequest,
  DecisionResult,
  ItemView,
  ReleaseRequest,
  ReplayedOperation,
  ReserveRequest,
  SetCustomerPlanInput,
  SettleRequest,
  StatePort,
  UpsertCustomerInput,
} from "./types.js";

/** Tunables of the rules, with production defaults. */
export interface EngineOptions {
  /** How long an idempotency key is remembered. Default 24 h. */
  readonly idempotencyWindowMs: number;
  /** Hold time of a reservation that names none. Default 10 min. */
  readonly defaultHoldTtlMs: number;
  /** Most usage items in one request. Default 64. */
  readonly maxItems: number;
}

export const DEFAULT_ENGINE_OPTIONS: EngineOptions = {
  idempotencyWindowMs: 24 * 60 * 60 * 1000,
  defaultHoldTtlMs: 10 * 60 * 1000,
  maxItems: 64,
};

/** What `createEngine` needs: a store, the live policy, a clock and an id source. */
export interface EngineDeps {
  readonly store: StatePort;
  /** Returns the live policy; read once per operation (a reload swaps what it returns). */
  readonly policy: () => CompiledPolicy;
  /** Epoch milliseconds. */
  readonly clock: () => number;
  /** Fresh unique ids (reservations). */
  readonly newId: () => string;
  readonly options?: Partial<EngineOptions>;
  /**
   * Told when an operation answered with the stored result of an idempotency key (counted
   * nothing), once that answer is durable. For metrics; must not throw.
   */
  readonly onIdempotentReplay?: (operation: ReplayedOperation) => void;
  /**
   * Told, once the answer is durable, of each alt id a decision's customer hint named that another
   * customer has: it was skipped, and the call decided for its caller. For logs and metrics (it is
   * an application bug or race to look into); must not throw.
   */
  readonly onHintAltIdConflict?: (conflict: AltIdConflict) => void;
  /**
   * Told, at the first operation, that the store's reset-rule history could not be read (the
   * message says why): it is set aside and a new one started, so meters whose rule changed before
   * are judged as in a data dir from a version that kept none. For logs; must not throw.
   */
  readonly onResetRuleHistoryIgnored?: (message: string) => void;
}

/** The decision and admin operations. Errors are `LimitrError`s; denials are results. */
export interface Engine {
  allow(req: DecisionRequest): Promise<DecisionResult>;
  /** Decides without changing or emitting anything. */
  check(req: DecisionRequest): Promise<DecisionResult>;
  /** Counts usage that already happened; never denied for limits. */
  record(req: DecisionRequest): Promise<DecisionResult>;
  reserve(req: ReserveRequest): Promise<DecisionResult>;
  settle(req: SettleRequest): Promise<DecisionResult>;
  release(req: ReleaseRequest): Promise<{ readonly released: boolean }>;
  /** The caller's meters: the named entitlements, or every entitlement of its plan. */
  getMeters(customerId: string, entitlements: readonly string[]): Promise<readonly ItemView[]>;
  upsertCustomer(input: UpsertCustomerInput): Promise<CustomerView>;
  getCustomer(id: string): Promise<CustomerView>;
  deleteCustomer(id: string): Promise<Customer>;
  setCustomerPlan(input: SetCustomerPlanInput): Promise<CustomerView>;
  listCustomers(afterId: string, limit: number): Promise<readonly CustomerView[]>;
}

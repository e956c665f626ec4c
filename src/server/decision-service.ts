/**
 * `limitr.v1.DecisionService` as a connect-es `ServiceImpl`: each method maps the request to the
 * engine's input, calls the engine once, and maps the result back. No rule lives here.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import type { ServiceImpl } from "@connectrpc/connect";
import type { DecisionResult, Engine, EventLog } from "../engine/index.js";
import { invalidArgument, isLimitrError } from "../errors/index.js";
import type { DecisionService } from "../gen/limitr/v1/decision_pb.js";
import { createEventFilter } from "./event-filter.js";
import { followEventLog } from "./follow-event-log.js";
import { requireId, toMeterState } from "./map-common.js";
import { decisionReply, LAYOUTS, reserveReply } from "./encode-decision.js";
import { toDecisionRequest, toReserveRequest, toSettleRequest } from "./map-decision.js";
import { batchResponses, eventResponse } from "./event-response.js";
import { toEventTypes } from "./map-events.js";

export interface DecisionServiceDeps {
  readonly engine: Engine;
  readonly events: EventLog;
  /** Per-subscriber WatchEvents buffer, in events. */
  readonly watchBufferEvents: number;
  /** Registers each WatchEvents feed while it runs (subscriber metrics). */
  readonly trackWatch?: (position: () => number) => () => void;
}

/** A uint64 sequence from the wire → number, naming the field when it cannot be one. */
export function toSequence(value: bigint, field: string): number {
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw invalidArgument(field, `${value} is out of range`);
  return Number(value);
}

/**
 * The primary id for a customer filter: alt ids resolve through the engine. A customer that does
 * not exist yet may still appear later, under that id or with it as an alt id (`followAltId`).
 */
export async function resolveCustomerFilter(engine: Engine, id: string): Promise<{ readonly customerId?: string; readonly followAltId?: string }> {
  if (id === "") return {};
  try {
    return { customerId: (await engine.getCustomer(id)).customer.id };
  } catch (e) {
    if (isLimitrError(e, "NOT_FOUND")) return { customerId: id, followAltId: id };
    throw e;
  }
}

/**
 * With `send_position`: how long a stream that went past events it did not deliver stays quiet
 * before it says where it stands. Bounds what a filtered subscriber rescans on a reconnect.
 */
const POSITION_EVERY_MS = 5_000;

/** Most events per WatchEvents message, whatever `max_batch_events` asks (the proto says so). */
export const MAX_BATCH_EVENTS = 1024;

/** Longest wait for a fuller batch, whatever `max_batch_delay_ms` asks (the proto says so). */
export const MAX_BATCH_DELAY_MS = 10_000;

const allowReply = (r: DecisionResult) => decisionReply(r, LAYOUTS.allow);
const checkReply = (r: DecisionResult) => decisionReply(r, LAYOUTS.check);
const recordReply = (r: DecisionResult) => decisionReply(r, LAYOUTS.record);

/** Creates the DecisionService handlers (unguarded: wrap with `guardServiceImpl`). */
export function createDecisionService({ engine, events, watchBufferEvents, trackWatch }: DecisionServiceDeps): ServiceImpl<typeof DecisionService> {
  return {
    // `then` with a shared callback rather than async methods: no suspended frame per decision.
    // A request that fails to map throws synchronously; the guard makes that a rejection too.
    allow(req) {
      return engine.allow(toDecisionRequest(req)).then(allowReply);
    },
    check(req) {
      return engine.check(toDecisionRequest(req)).then(checkReply);
    },
    record(req) {
      return engine.record(toDecisionRequest(req)).then(recordReply);
    },
    async reserve(req) {
      return reserveReply(await engine.reserve(toReserveRequest(req)));
    },
    async settle(req) {
      return decisionReply(await engine.settle(toSettleRequest(req)), LAYOUTS.settle);
    },
    async release(req) {
      const { released } = await engine.release({ reservationId: requireId(req.reservationId, "reservation_id") });
      return { released };
    },
    async getMeters(req) {
      requireId(req.customerId, "customer_id");
      req.entitlements.forEach((e, i) => requireId(e, `entitlements[${i}]`));
      const views = await engine.getMeters(req.customerId, req.entitlements);
      return { meters: views.map(toMeterState) };
    },
    async *watchEvents(req, ctx) {
      let from: number | undefined;
      if (req.fromSequence !== undefined) {
        from = toSequence(req.fromSequence, "from_sequence");
        const last = events.lastSequence();
        if (from > last + 1) {
          throw invalidArgument("from_sequence", `${from} is past the newest event (${last}); resume with at most ${last + 1}`);
        }
      }
      const types = toEventTypes(req.types, "types");
      req.entitlements.forEach((e, i) => requireId(e, `entitlements[${i}]`));
      const customer = await resolveCustomerFilter(engine, req.customerId);
      const matches = createEventFilter({ types, ...customer, entitlements: req.entitlements });
      const batched = req.maxBatchEvents > 1;
      if (req.sendPosition) {
        // A live-only start is fixed here rather than at the feed's subscription: the feed reads
        // whatever commits in between from the log, so the announced position is exact.
        from = from === undefined ? events.lastSequence() + 1 : Math.max(1, from);
        yield { kind: { case: "position", value: { nextSequence: BigInt(from) } } };
      }
      const feed = followEventLog(events, {
        fromSequence: from,
        matches,
        maxBuffered: watchBufferEvents,
        maxBatch: Math.min(req.maxBatchEvents, MAX_BATCH_EVENTS),
        maxDelayMs: Math.min(req.maxBatchDelayMs, MAX_BATCH_DELAY_MS),
        positionEveryMs: req.sendPosition ? POSITION_EVERY_MS : 0,
        signal: ctx.signal,
        ...(trackWatch === undefined ? {} : { track: trackWatch }),
      });
      for await (const item of feed) {
        if (item.kind === "position") {
          yield { kind: { case: "position", value: { nextSequence: BigInt(item.next) } } };
        } else if (item.kind === "lost") {
          yield {
            kind: {
              case: "eventsLost",
              value: { requestedSequence: BigInt(item.requested), firstAvailableSequence: BigInt(item.firstAvailable) },
            },
          };
        } else if (batched) {
          for (const batch of batchResponses(item.events)) yield batch;
        } else {
          for (const stored of item.events) yield eventResponse(stored);
        }
      }
      // The feed only ends when the call is aborted. A client that cancelled sees nothing; any
      // other reason (shutdown, deadline) gets a retryable status so it resumes elsewhere.
      if (!isLimitrError(ctx.signal.reason, "CANCELLED")) {
        throw new ConnectError("event stream closed by the server; resume with from_sequence", Code.Unavailable);
      }
    },
  };
}

/**
 * `limitr.v1.AdminService` as a connect-es `ServiceImpl`: customers through the engine, policy
 * status from the composition root, export/import and audit queries through the store.
 */
import type { ServiceImpl } from "@connectrpc/connect";
import type { Engine, EventLog, StateRecord } from "../engine/index.js";
import { invalidArgument } from "../errors/index.js";
import type { AdminService } from "../gen/limitr/v1/admin_pb.js";
import type { ImportStateRequest } from "../gen/limitr/v1/admin_pb.js";
import { resolveCustomerFilter } from "./decision-service.js";
import { fromTimestamp, requireId, toCustomerPb, toCustomerViewPb, toTimestamp } from "./map-common.js";
import { toEventPb, toEventTypes } from "./map-events.js";
import { fromStateRecordPb, toStateRecordPb } from "./map-state.js";
import { decodePageToken, encodePageToken, pageSize } from "./page-token.js";
import { scanEventLog } from "./scan-event-log.js";
import type { PolicyStatus, StateAdmin } from "./server-deps.js";

export interface AdminServiceDeps {
  readonly engine: Engine;
  readonly events: EventLog;
  readonly policyStatus: () => PolicyStatus;
  readonly state: StateAdmin;
}

const DEFAULT_PAGE = 100;
const MAX_PAGE = 1000;

/** Creates the AdminService handlers (unguarded: wrap with `guardServiceImpl`). */
export function createAdminService({ engine, events, policyStatus, state }: AdminServiceDeps): ServiceImpl<typeof AdminService> {
  return {
    async upsertCustomer(req) {
      const view = await engine.upsertCustomer({
        id: requireId(req.customerId, "customer_id"),
        ...(req.plan !== undefined ? { plan: req.plan } : {}),
        ...(req.type !== undefined ? { type: req.type } : {}),
        refs: [...req.refs],
        altIds: [...req.altIds],
        metadata: { ...req.metadata },
      });
      return { customer: toCustomerViewPb(view) };
    },
    async getCustomer(req) {
      return { customer: toCustomerViewPb(await engine.getCustomer(requireId(req.customerId, "customer_id"))) };
    },
    async deleteCustomer(req) {
      return { customer: toCustomerPb(await engine.deleteCustomer(requireId(req.customerId, "customer_id"))) };
    },
    async setCustomerPlan(req) {
      const view = await engine.setCustomerPlan({
        customerId: requireId(req.customerId, "customer_id"),
        plan: req.plan,
        resetMeters: req.resetMeters,
      });
      return { customer: toCustomerViewPb(view) };
    },
    async listCustomers(req) {
      const limit = pageSize(req.pageSize, DEFAULT_PAGE, MAX_PAGE);
      const after = decodePageToken("customers", req.pageToken) ?? "";
      // One extra tells whether another page exists without a second call.
      const views = await engine.listCustomers(after, limit + 1);
      const page = views.slice(0, limit);
      const last = page[page.length - 1];
      return {
        customers: page.map(toCustomerViewPb),
        nextPageToken: views.length > limit && last ? encodePageToken("customers", last.customer.id) : "",
      };
    },
    getPolicyStatus() {
      const s = policyStatus();
      return {
        version: s.version,
        ...(s.appliedAt !== undefined ? { appliedAt: toTimestamp(s.appliedAt) } : {}),
        source: s.source,
        lastErrors: [...s.lastErrors],
        ...(s.lastRejectedAt !== undefined ? { lastRejectedAt: toTimestamp(s.lastRejectedAt) } : {}),
        rejectionsSinceApplied: s.rejectionsSinceApplied,
      };
    },
    async *exportState() {
      for await (const record of state.exportState()) yield { record: toStateRecordPb(record) };
    },
    async importState(requests) {
      const { count } = await state.importState(toRecords(requests), recordField);
      return { count: BigInt(count) };
    },
    async listEvents(req) {
      const limit = pageSize(req.pageSize, DEFAULT_PAGE, MAX_PAGE);
      const token = decodePageToken("events", req.pageToken);
      const afterSequence = token === undefined ? 0 : Number(token);
      if (!Number.isSafeInteger(afterSequence) || afterSequence < 0) throw invalidArgument("page_token", "is not a token returned by this list");
      const types = toEventTypes(req.types, "types");
      req.entitlements.forEach((e, i) => requireId(e, `entitlements[${i}]`));
      const fromTime = req.startTime ? fromTimestamp(req.startTime, "start_time") : undefined;
      const toTime = req.endTime ? fromTimestamp(req.endTime, "end_time") : undefined;
      if (fromTime !== undefined && toTime !== undefined && toTime < fromTime) {
        throw invalidArgument("end_time", "must not be before start_time");
      }
      const query = {
        // A query reads what is stored: the id resolves now, nothing to follow.
        customerId: (await resolveCustomerFilter(engine, req.customerId)).customerId,
        entitlements: [...req.entitlements],
        types,
        fromTime,
        toTime,
        afterSequence,
        limit,
      };
      const page = state.listEvents ? await state.listEvents(query) : scanEventLog(events, query);
      return {
        events: page.events.map(toEventPb),
        nextPageToken: page.nextAfterSequence === undefined ? "" : encodePageToken("events", String(page.nextAfterSequence)),
      };
    },
  };
}

/** How errors name import record `index`, whether the decoding or the store refuses it. */
const recordField = (index: number): string => `requests[${index}].record`;

/** Import requests → records, naming the failing message's position in errors. */
async function* toRecords(requests: AsyncIterable<ImportStateRequest>): AsyncGenerator<StateRecord> {
  let i = 0;
  for await (const req of requests) {
    yield fromStateRecordPb(req.record, recordField(i));
    i += 1;
  }
}

/**
 * How an import turns each record into writes: checked by the engine's rules for records
 * (`validateStateRecord`) against what is stored plus the records before it in the same import,
 * and by the storage's own (ids it can key), each error naming the record's field.
 */
import { summarizeHolds, validateStateRecord, type Customer, type CustomerLookup, type StateRecord, type Write } from "../engine/index.js";
import { invalidArgument, isLimitrError, LimitrError } from "../errors/index.js";
import { holdId, validateWrites } from "./write-ops.js";

/** How an import names record `index` in errors (the RPC: `requests[3].record`). */
export type RecordField = (index: number) => string;

export const DEFAULT_RECORD_FIELD: RecordField = (index) => `records[${index}]`;

/** Nothing stored: what a state file is checked against when it goes into a new data dir. */
export const NOTHING_STORED: CustomerLookup = { getCustomer: () => undefined, resolveAltId: () => undefined };

export interface ImportChecker {
  /**
   * The writes that store `r` as it is, replacing what was there, or an error naming its field.
   * `previousOf` gives the customer as the commit of these writes will find it stored.
   */
  writes(r: StateRecord, index: number, previousOf: (id: string) => Customer | undefined): Write[];
  /** The records checked so far are committed: `stored` now shows them. */
  committed(): void;
}

/**
 * Checks records in import order against `stored` and the records before them that `stored`
 * does not show yet (those of the chunk not yet committed, or of a whole file checked first).
 */
export function createImportChecker(stored: CustomerLookup, fieldOf: RecordField): ImportChecker {
  const customers = new Map<string, Customer>();
  const altIds = new Map<string, string | undefined>();
  const state: CustomerLookup = {
    getCustomer: (id) => customers.get(id) ?? stored.getCustomer(id),
    resolveAltId: (alt) => (altIds.has(alt) ? altIds.get(alt) : stored.resolveAltId(alt)),
  };
  return {
    writes(r, index, previousOf) {
      const at = fieldOf(index);
      // The wall clock: an import stores what decisions judged up to now, and none judged later.
      validateStateRecord(state, r, at, Date.now());
      const writes = recordWrites(r, at, previousOf);
      if (r.kind === "customer") {
        const c = r.customer;
        // The record replaces the customer: the alt ids it held and no longer lists are free.
        for (const alt of state.getCustomer(c.id)?.altIds ?? []) altIds.set(alt, undefined);
        for (const alt of c.altIds) altIds.set(alt, c.id);
        customers.set(c.id, c);
      }
      return writes;
    },
    committed() {
      customers.clear();
      altIds.clear();
    },
  };
}

/**
 * Checked as a commit would check them (ids the storage cannot key), so that a refused record is
 * refused on its own: in a chunk, it would take every record queued before it down with it.
 */
function recordWrites(r: StateRecord, at: string, previousOf: (id: string) => Customer | undefined): Write[] {
  const writes: Write[] = [];
  switch (r.kind) {
    case "customer":
      writes.push({ kind: "customer-put", customer: r.customer, previous: previousOf(r.customer.id) });
      break;
    case "meter": {
      const { owner, entitlement } = r.meter;
      const seen = new Set<string>();
      r.holds.forEach((h, i) => {
        const id = holdId(h.expiresAt, h.reservationId);
        if (seen.has(id)) throw invalidArgument(`${at}.meter.holds[${i}]`, `reservation "${h.reservationId}" holds this meter twice with the same expiry`);
        seen.add(id);
      });
      // The record's holds replace the meter's: the delete takes the holds stored when the chunk
      // is applied (a Reserve may have added one since this record was read). The summary is the
      // store's to keep right, whoever built the record.
      writes.push({ kind: "meter-delete", owner, entitlement });
      writes.push({ kind: "meter-put", meter: { ...r.meter, holdSummary: summarizeHolds(r.holds) } });
      for (const hold of r.holds) writes.push({ kind: "hold-put", owner, entitlement, hold });
      break;
    }
    case "reservation":
      writes.push({ kind: "reservation-put", reservation: r.reservation });
      break;
    case "idempotency":
      writes.push({ kind: "idempotency-put", record: r.record });
      break;
    case "event-log":
      // Not a row: the store raises its numbering (`importState`).
      break;
    default:
      throw invalidArgument(`${at}.kind`, `unknown record kind ${JSON.stringify((r as { kind: unknown }).kind)}`);
  }
  try {
    validateWrites(writes);
  } catch (e) {
    if (!isLimitrError(e) || !e.field.startsWith("writes[")) throw e;
    const field = `${at}.${recordPath(r.kind, e.field)}`;
    throw new LimitrError(e.code, e.message.slice(e.field.length + 2), { field, cause: e });
  }
  return writes;
}

/**
 * A write's field → the record's, in proto names: `writes[3].hold.reservationId` of a meter
 * (writes: delete, put, then one per hold) is `meter.holds[1].reservation_id`.
 */
function recordPath(kind: StateRecord["kind"], writeField: string): string {
  const m = /^writes\[(\d+)\]\.(.*)$/.exec(writeField);
  const [write, path] = m === null ? [0, writeField] : [Number(m[1]), m[2] ?? ""];
  const snake = (s: string): string => s.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
  if (kind === "meter" && path.startsWith("hold.")) return `meter.holds[${write - 2}].${snake(path.slice("hold.".length))}`;
  if (kind === "idempotency" && path.startsWith("record.")) return `idempotency.${snake(path.slice("record.".length))}`;
  const within = path.startsWith(`${kind}.`) ? path.slice(kind.length + 1) : path;
  return `${kind}.${snake(within)}`;
}

/**
 * Checks `records` as importing them into `stored` would, writing nothing: a state file is
 * checked whole before any of it is imported. Resolves with the count.
 */
export async function checkStateRecords(
  records: AsyncIterable<StateRecord>,
  stored: CustomerLookup = NOTHING_STORED,
  fieldOf: RecordField = DEFAULT_RECORD_FIELD,
): Promise<number> {
  const checker = createImportChecker(stored, fieldOf);
  let index = 0;
  for await (const r of records) checker.writes(r, index++, () => undefined);
  return index;
}

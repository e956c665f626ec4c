/**
 * Which events a WatchEvents subscriber or a ListEvents query wants. One predicate for both, so
 * "about customer X" means the same thing live and in the audit trail.
 */
import type { EngineEvent, EventType, StoredEvent } from "../engine/index.js";

/** Filters combine with AND; an empty list or undefined means "any". */
export interface EventFilter {
  readonly types?: readonly EventType[];
  /** A primary customer id: matches the caller, the meter owner, or a customer event's subject. */
  readonly customerId?: string | undefined;
  /**
   * An id no customer had when the filter was made (it is `customerId` too): should a customer
   * take it as an alt id later, the filter follows that customer from its `customer-set` event on.
   * Events name customers by primary id only, so without this a subscriber that names a customer
   * by its Stripe id before the first use creates it would never see its events. Each event is
   * judged by who held the id as of its sequence, so the predicate may see events in any order.
   */
  readonly followAltId?: string | undefined;
  /** Only meter events of these entitlements. */
  readonly entitlements?: readonly string[];
  /** Epoch ms, inclusive. */
  readonly fromTime?: number | undefined;
  /** Epoch ms, exclusive. */
  readonly toTime?: number | undefined;
}

/** Compiles a filter into a predicate over stored events. */
export function createEventFilter(filter: EventFilter): (stored: StoredEvent) => boolean {
  const types = filter.types && filter.types.length > 0 ? new Set(filter.types) : undefined;
  const ents = filter.entitlements && filter.entitlements.length > 0 ? new Set(filter.entitlements) : undefined;
  const given = filter.customerId;
  const altId = filter.followAltId;
  // Who holds the alt id from which sequence on, in sequence order. A feed reads the log and
  // hears live commits at the same time, so events do not come in order: an event is judged by
  // the holder as of its own sequence.
  const holders: { readonly from: number; readonly id: string }[] = [];
  const customerAt = (seq: number): string | undefined => {
    for (let i = holders.length - 1; i >= 0; i--) if ((holders[i] as { from: number }).from <= seq) return (holders[i] as { id: string }).id;
    return given;
  };
  const { fromTime, toTime } = filter;
  return ({ seq, event }) => {
    // Before any other test: the event that gives the alt id to a customer may be filtered out.
    if (altId !== undefined && event.type === "customer-set" && event.customer.altIds.includes(altId) && !holders.some((h) => h.from === seq)) {
      holders.push({ from: seq, id: event.customer.id });
      holders.sort((a, b) => a.from - b.from);
    }
    const customer = altId === undefined ? given : customerAt(seq);
    if (types && !types.has(event.type)) return false;
    if (fromTime !== undefined && event.time < fromTime) return false;
    if (toTime !== undefined && event.time >= toTime) return false;
    if (ents) {
      const ent = entitlementOf(event);
      if (ent === undefined || !ents.has(ent)) return false;
    }
    if (customer !== undefined && !customersOf(event).includes(customer)) return false;
    return true;
  };
}

function entitlementOf(e: EngineEvent): string | undefined {
  return e.type.startsWith("meter-") && "entitlement" in e ? e.entitlement : undefined;
}

function customersOf(e: EngineEvent): readonly string[] {
  switch (e.type) {
    case "customer-set":
    case "customer-removed":
      return [e.customer.id];
    case "customer-plan-changed":
      return [e.customerId];
    case "policy-applied":
    case "policy-rejected":
      return [];
    default:
      return [e.customerId, e.owner];
  }
}

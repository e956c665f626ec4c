/**
 * The customer filter that follows an alt id given after the stream opened: events are judged by
 * who held the id as of their own sequence, whatever order the feed hands them over in (its log
 * replay and the live commits overlap).
 */
import { describe, expect, it } from "vitest";
import type { Customer, StoredEvent } from "../../src/engine/index.js";
import { createEventFilter } from "../../src/server/event-filter.js";
import { meterEvent } from "../store/fixtures.js";

const customer = (id: string, altIds: string[]): Customer => ({ id, plan: "", type: "user", refs: [], altIds, metadata: {}, createdAt: 0, updatedAt: 0 });
const meterOf = (seq: number, id: string): StoredEvent => ({ seq, event: meterEvent(id, "chat", 1n) });
const takes = (seq: number, id: string, altIds: string[]): StoredEvent => ({ seq, event: { type: "customer-set", time: 0, customer: customer(id, altIds) } });

describe("createEventFilter with followAltId", () => {
  it("matches x's events only from the customer-set that gives x the alt id, in whatever order they come", () => {
    const matches = createEventFilter({ customerId: "cus_S", followAltId: "cus_S" });
    // Live first (seq 10, 12), then the replay reaches older events (5, 7).
    expect(matches(takes(10, "x", ["cus_S"]))).toBe(true);
    expect(matches(meterOf(12, "x"))).toBe(true);
    expect(matches(meterOf(5, "x"))).toBe(false);
    expect(matches(meterOf(7, "y"))).toBe(false);
    // The id moves on to y at 20: x's later events no longer match, y's do.
    expect(matches(takes(20, "y", ["cus_S"]))).toBe(true);
    expect(matches(meterOf(21, "x"))).toBe(false);
    expect(matches(meterOf(22, "y"))).toBe(true);
    expect(matches(meterOf(15, "x"))).toBe(true);
  });

  it("without followAltId a customer-set naming the id as an alt id changes nothing", () => {
    const matches = createEventFilter({ customerId: "cus_S" });
    expect(matches(takes(10, "x", ["cus_S"]))).toBe(false);
    expect(matches(meterOf(12, "x"))).toBe(false);
  });
});

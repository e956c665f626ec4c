/** Small builders of stored state for the store tests. */
import { NO_HOLD_SUMMARY, type Customer, type EngineEvent, type IdempotencyRecord, type Meter, type Reservation } from "../../src/engine/index.js";

/** 1e15 tokens × 1e9 nanos, plus one: past int64, must round-trip exactly. */
export const HUGE = 10n ** 24n + 1n;

export function customer(id: string, over: Partial<Customer> = {}): Customer {
  return {
    id,
    plan: "pro",
    type: "user",
    refs: [],
    altIds: [],
    metadata: {},
    createdAt: 1_700_000_000_000,
    updatedAt: 1_700_000_000_000,
    ...over,
  };
}

export function meter(owner: string, entitlement: string, value: bigint, over: Partial<Meter> = {}): Meter {
  return {
    owner,
    entitlement,
    credit: "tokens",
    periodStart: 1_700_000_000_000,
    value,
    overhead: 0n,
    billedOverage: undefined,
    resetRule: undefined,
    judgedAt: undefined,
    holdSummary: NO_HOLD_SUMMARY,
    thresholdsReached: [],
    ...over,
  };
}

export function reservation(id: string, over: Partial<Reservation> = {}): Reservation {
  return {
    id,
    customerId: "c1",
    items: [{ entitlement: "chat", owner: "c1", amount: HUGE }],
    createdAt: 1_700_000_000_000,
    expiresAt: 1_700_000_600_000,
    attributes: { model: "gpt" },
    ...over,
  };
}

export function idempotency(key: string, expiresAt: number): IdempotencyRecord {
  return {
    key,
    fingerprint: `a:${JSON.stringify(["allow", key])}`,
    expiresAt,
    result: {
      allowed: false,
      reason: "HARD_LIMIT",
      deniedItem: 1,
      customerId: "c1",
      plan: "pro",
      policyVersion: "v1",
      items: [
        { kind: "feature", entitlement: "sso", granted: true },
        {
          kind: "metered",
          entitlement: "chat",
          owner: "org1",
          credit: "tokens",
          unit: "tokens",
          mode: "hard",
          value: HUGE,
          limit: -HUGE,
          remaining: -(HUGE * 2n),
          held: 5n,
          overage: 0n,
          periodStart: 1_700_000_000_000,
          nextReset: undefined,
        },
      ],
    },
  };
}

type MeterChanged = Extract<EngineEvent, { type: "meter-changed" }>;

export function meterEvent(
  customerId: string,
  entitlement: string,
  diff: bigint,
  over: Partial<MeterChanged> = {},
): MeterChanged {
  return {
    type: "meter-changed",
    time: 1_700_000_000_000,
    customerId,
    owner: customerId,
    entitlement,
    plan: "pro",
    credit: "tokens",
    unit: "tokens",
    mode: "soft",
    oldValue: 0n,
    newValue: diff,
    limit: HUGE,
    diff,
    remaining: HUGE - diff,
    overage: 0n,
    overagePrice: undefined,
    periodStart: 1_700_000_000_000,
    attributes: { model: "m" },
    policyVersion: "v1",
    idempotencyKey: "",
    ...over,
  };
}

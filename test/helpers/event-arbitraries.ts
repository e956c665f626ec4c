/**
 * Arbitrary meter events for property tests, over a given text arbitrary: the wire encoder is
 * tested with any code units (lone surrogates included), the store with text UTF-8 can hold.
 */
import fc from "fast-check";
import type { EngineEvent } from "../../src/engine/index.js";

export const nanos = fc.oneof(
  fc.constant(0n),
  fc.bigInt({ min: -(10n ** 12n), max: 10n ** 12n }),
  fc.bigInt({ min: -(10n ** 12n), max: 10n ** 12n }).map((n) => n * 1_000_000_000n),
  fc.bigInt({ min: -(10n ** 40n), max: 10n ** 40n }),
);

export const ms = fc.oneof(
  fc.constant(0),
  fc.integer({ min: -5_000, max: 5_000 }),
  fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }).map((s) => s * 1000 + 7),
  fc.maxSafeInteger(),
);

export function meterEvents(text: fc.Arbitrary<string>, threshold: fc.Arbitrary<number> = fc.double()): fc.Arbitrary<EngineEvent> {
  const attributes = fc.oneof(
    fc.constant({}),
    fc.dictionary(text, text, { maxKeys: 6 }),
    // Integer-like keys are enumerated first by JS, whatever the insertion order.
    fc.dictionary(fc.constantFrom("b", "1", "a", "0", "10", "model"), text),
  );
  const fields = fc.record({
    time: ms,
    customerId: text,
    owner: text,
    entitlement: text,
    plan: text,
    credit: text,
    unit: text,
    mode: fc.constantFrom("hard" as const, "soft" as const, "observe" as const),
    oldValue: nanos,
    newValue: nanos,
    limit: nanos,
    diff: nanos,
    remaining: nanos,
    overage: nanos,
    overagePrice: fc.option(nanos, { nil: undefined }),
    periodStart: ms,
    attributes,
    policyVersion: text,
    idempotencyKey: text,
  });
  return fc.oneof(
    fc
      .tuple(fields, fc.constantFrom("meter-changed" as const, "meter-overage" as const, "meter-limit" as const, "meter-reset" as const))
      .map(([f, type]) => ({ ...f, type })),
    fc
      .tuple(fields, fc.constantFrom("meter-threshold" as const, "meter-threshold-cleared" as const), threshold)
      .map(([f, type, threshold]) => ({ ...f, type, threshold })),
  );
}

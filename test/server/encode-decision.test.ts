import fc from "fast-check";
import { create, fromBinary, toBinary, ScalarType } from "@bufbuild/protobuf";
import type { DescField, DescMessage } from "@bufbuild/protobuf";
import { BinaryReader, WireType } from "@bufbuild/protobuf/wire";
import { describe, expect, it } from "vitest";
import type { DecisionResult, ItemView } from "../../src/engine/index.js";
import {
  AllowResponseSchema,
  CheckResponseSchema,
  RecordResponseSchema,
  ReserveResponseSchema,
  SettleResponseSchema,
} from "../../src/gen/limitr/v1/decision_pb.js";
import { decisionLayout, decisionReply, encodeDecision, LAYOUTS, reserveReply } from "../../src/server/encode-decision.js";
import { toDecisionFields, toReserveFields } from "../../src/server/map-decision.js";
import { encodesAs, toWire } from "../../src/server/wire-encodable.js";

// Strings of any code points (astral, lone surrogates are not valid UTF-8 and never reach us).
const text = fc.oneof(fc.constant(""), fc.string({ unit: "grapheme", maxLength: 12 }), fc.string({ unit: "binary", maxLength: 40 }));
const nanos = fc.oneof(
  fc.constant(0n),
  fc.bigInt({ min: -(10n ** 12n), max: 10n ** 12n }), // fractions
  fc.bigInt({ min: -(10n ** 12n), max: 10n ** 12n }).map((n) => n * 1_000_000_000n), // whole units
  fc.bigInt({ min: -(10n ** 40n), max: 10n ** 40n }), // huge
);
// Epoch ms: typical, negative, zero, sub-second, and far beyond int32 seconds.
const ms = fc.oneof(fc.constant(0), fc.integer({ min: -5_000, max: 5_000 }), fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }).map((s) => s * 1000 + 7), fc.maxSafeInteger());

const feature: fc.Arbitrary<ItemView> = fc.record({ kind: fc.constant("feature" as const), entitlement: text, granted: fc.boolean() });
/** A metered item whose strings come from `str`. */
const meteredOf = (str: fc.Arbitrary<string>): fc.Arbitrary<ItemView> =>
  fc.record({
    kind: fc.constant("metered" as const),
    entitlement: str,
    owner: str,
    credit: str,
    unit: str,
    mode: fc.constantFrom("hard" as const, "soft" as const, "observe" as const),
    value: nanos,
    limit: nanos,
    remaining: nanos,
    held: nanos,
    overage: nanos,
    periodStart: ms,
    nextReset: fc.option(ms, { nil: undefined }),
  });
const metered = meteredOf(text);

const common = fc.record(
  {
    customerId: text,
    plan: text,
    policyVersion: text,
    items: fc.array(fc.oneof(metered, feature), { maxLength: 4 }),
    reservationId: text,
    reservationExpiresAt: ms,
  },
  { requiredKeys: ["customerId", "plan", "policyVersion", "items"] },
);
const result: fc.Arbitrary<DecisionResult> = fc.oneof(
  fc.tuple(common, fc.constantFrom("OK" as const, "SOFT_LIMIT_EXCEEDED" as const)).map(([c, reason]) => ({ ...c, allowed: true as const, reason })),
  fc
    .tuple(
      common,
      fc.constantFrom("HARD_LIMIT" as const, "NOT_ENTITLED" as const, "UNKNOWN_CUSTOMER" as const, "UNKNOWN_ENTITLEMENT" as const, "SCOPE_UNRESOLVED" as const),
      fc.oneof(fc.nat(8), fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 })),
    )
    .map(([c, reason, deniedItem]) => ({ ...c, allowed: false as const, reason, deniedItem })),
);

const decisionSchemas = [
  ["allow", AllowResponseSchema],
  ["check", CheckResponseSchema],
  ["record", RecordResponseSchema],
  ["settle", SettleResponseSchema],
] as const;

describe("encodeDecision", () => {
  it.each(decisionSchemas)("%s: the same bytes as toBinary(create(toDecisionFields(result)))", (name, schema) => {
    fc.assert(
      fc.property(result, (r) => {
        const expected = toBinary(schema, create(schema, toDecisionFields(r)));
        expect(encodeDecision(r, LAYOUTS[name])).toEqual(expected);
        // What grpc-js is handed, and what connect-node makes of the same object.
        const reply = decisionReply(r, LAYOUTS[name]);
        expect(encodesAs(reply, schema)).toBe(true);
        if (encodesAs(reply, schema)) expect(reply[toWire]()).toEqual(expected);
        expect(toBinary(schema, create(schema, reply))).toEqual(expected);
      }),
      { numRuns: 500 },
    );
  });

  it("reserve: the same bytes as toBinary(create(toReserveFields(result)))", () => {
    fc.assert(
      fc.property(result, (r) => {
        const expected = toBinary(ReserveResponseSchema, create(ReserveResponseSchema, toReserveFields(r)));
        expect(encodeDecision(r, LAYOUTS.reserve)).toEqual(expected);
        expect(toBinary(ReserveResponseSchema, create(ReserveResponseSchema, reserveReply(r)))).toEqual(expected);
      }),
      { numRuns: 500 },
    );
  });

  it("decodes to the message protobuf-es builds (edge values spelled out)", () => {
    const r: DecisionResult = {
      allowed: false,
      reason: "HARD_LIMIT",
      deniedItem: 0,
      customerId: "cüs-😀",
      plan: "",
      policyVersion: "v1",
      items: [
        {
          kind: "metered",
          entitlement: "gpt_tokens",
          owner: "org",
          credit: "token",
          unit: "",
          mode: "hard",
          value: 10n ** 40n,
          limit: 0n,
          remaining: -(10n ** 40n) - 1n,
          held: 1n,
          overage: 0n,
          periodStart: -1,
          nextReset: undefined,
        },
        { kind: "feature", entitlement: "sso", granted: false },
      ],
    };
    const decoded = fromBinary(AllowResponseSchema, encodeDecision(r, LAYOUTS.allow));
    expect(decoded).toEqual(create(AllowResponseSchema, toDecisionFields(r)));
    expect(decoded.deniedItem).toBe(0);
    expect(decoded.items[0]?.periodStart).toEqual(expect.objectContaining({ seconds: -1n, nanos: 999_000_000 }));
    expect(decoded.items[0]?.nextReset).toBeUndefined();
  });

  it("only claims the schema it was made for", () => {
    const r: DecisionResult = { allowed: true, reason: "OK", customerId: "a", plan: "p", policyVersion: "v", items: [] };
    expect(encodesAs(decisionReply(r, LAYOUTS.allow), CheckResponseSchema)).toBe(false);
    expect(encodesAs(toDecisionFields(r), AllowResponseSchema)).toBe(false);
  });
});

// Long strings of any code units, lone surrogates included (they become U+FFFD, as protobuf-es's
// TextEncoder makes them), with lengths around the 1-byte length prefix's limits.
const codeUnit = fc.oneof(
  fc.string({ unit: "binary-ascii", minLength: 1, maxLength: 1 }),
  fc.string({ unit: "binary", minLength: 1, maxLength: 1 }),
  fc.constantFrom("é", "€", "😀", "\uD800", "\uDBFF", "\uDC00", "\uDFFF"),
);
const longText = fc.oneof(fc.string({ unit: codeUnit, maxLength: 200, size: "max" }), fc.string({ unit: "binary-ascii", minLength: 120, maxLength: 140 }));
const bigItem: fc.Arbitrary<ItemView> = fc.oneof(
  fc.record({ kind: fc.constant("feature" as const), entitlement: longText, granted: fc.boolean() }),
  meteredOf(longText),
);
const bigResult: fc.Arbitrary<DecisionResult> = fc
  .record({ customerId: longText, plan: longText, policyVersion: longText, items: fc.array(bigItem, { maxLength: 60, size: "max" }), reservationId: longText, reservationExpiresAt: ms })
  .map((c) => ({ ...c, allowed: true as const, reason: "OK" as const }));

const allowBytes = (r: DecisionResult): Uint8Array => toBinary(AllowResponseSchema, create(AllowResponseSchema, toDecisionFields(r)));
const reserveBytes = (r: DecisionResult): Uint8Array => toBinary(ReserveResponseSchema, create(ReserveResponseSchema, toReserveFields(r)));
const meter = (entitlement: string, owner = "org"): ItemView => ({
  kind: "metered",
  entitlement,
  owner,
  credit: "token",
  unit: "token",
  mode: "soft",
  value: 5n * 10n ** 9n,
  limit: 10n ** 18n,
  remaining: -(10n ** 9n),
  held: 0n,
  overage: 1n,
  periodStart: Date.UTC(2026, 10, 1),
  nextReset: Date.UTC(2026, 11, 1),
});
const allowed = (items: ItemView[], customerId = "c"): DecisionResult => ({ allowed: true, reason: "OK", customerId, plan: "pro", policyVersion: "v1", items });

// The encoder writes into one scratch buffer (16 KiB at first) and copies out.
describe("encodeDecision's scratch buffer", () => {
  it("long strings, many and large items: the same bytes (past 16 KiB, past 128-byte items)", () => {
    let large = 0;
    fc.assert(
      fc.property(bigResult, (r) => {
        const expected = allowBytes(r);
        if (expected.length > 16 * 1024) large++;
        expect(encodeDecision(r, LAYOUTS.allow)).toEqual(expected);
        expect(encodeDecision(r, LAYOUTS.reserve)).toEqual(reserveBytes(r));
      }),
      // Shrinking results this large runs for many minutes; the seed and path replay a failure.
      { numRuns: 30, endOnFailure: true },
    );
    expect(large).toBeGreaterThan(0);
  });

  it("a MeterState of 128 bytes or more gets a multi-byte length", () => {
    for (const entitlement of ["e".repeat(200), "€".repeat(60), "x".repeat(127), "y".repeat(20_000)]) {
      const r = allowed([meter("a"), meter(entitlement), meter("b")]);
      const bytes = encodeDecision(r, LAYOUTS.allow);
      expect(bytes).toEqual(allowBytes(r));
      expect(fromBinary(AllowResponseSchema, bytes).items.map((i) => i.entitlement)).toEqual(["a", entitlement, "b"]);
    }
  });

  it("a response far larger than the scratch buffer, then small ones again", () => {
    // Larger than anything the property above can have grown the buffer to (about 256 KiB).
    const items = Array.from({ length: 100 }, (_, i) => meter(`${i}:` + "語".repeat(2000), "o".repeat(i)));
    const big = allowed(items, "ü".repeat(5000));
    const expected = allowBytes(big);
    expect(expected.length).toBeGreaterThan(512 * 1024);
    expect(encodeDecision(big, LAYOUTS.allow)).toEqual(expected);
    const small = allowed([meter("gpt_tokens")]);
    expect(encodeDecision(small, LAYOUTS.allow)).toEqual(allowBytes(small));
    expect(encodeDecision(big, LAYOUTS.allow)).toEqual(expected);
  });

  it("strings whose UTF-8 length crosses 127 at a multi-byte character", () => {
    const strings = [
      "a".repeat(127), // ASCII, 127 bytes
      "a".repeat(128),
      "€".repeat(42), // 42 units, 126 bytes
      "€".repeat(43), // 129 bytes
      "a".repeat(124) + "€", // 127 bytes
      "a".repeat(125) + "€", // 128 bytes
      "a".repeat(126) + "é", // 127 units, 128 bytes
      "a".repeat(40) + "😀", // 42 units, 44 bytes
      "😀".repeat(32), // 64 units, 128 bytes
      "\uD800".repeat(42), // lone surrogates: U+FFFD, 126 bytes
      "\uDC00".repeat(43),
      "a\uD800b" + "c".repeat(130),
    ];
    for (const s of strings) {
      const r = allowed([meter(s, s), { kind: "feature", entitlement: s, granted: true }], s);
      expect(encodeDecision(r, LAYOUTS.allow)).toEqual(allowBytes(r));
      expect(fromBinary(AllowResponseSchema, encodeDecision(r, LAYOUTS.allow)).customerId).toBe(s.replace(/[\uD800-\uDFFF]/gu, "\uFFFD"));
    }
  });

  it("returns the caller's own bytes: the next call does not change them", () => {
    const first = allowed([meter("input_tokens"), meter("output_tokens")], "first");
    const second = allowed([meter("requests", "other")], "second");
    const a = encodeDecision(first, LAYOUTS.allow);
    const copy = Uint8Array.from(a);
    const b = encodeDecision(second, LAYOUTS.allow);
    expect(a).toEqual(copy);
    expect(a).toEqual(allowBytes(first));
    expect(b).toEqual(allowBytes(second));
    a.fill(0);
    expect(b).toEqual(allowBytes(second));
    expect(encodeDecision(second, LAYOUTS.allow)).toEqual(allowBytes(second));
  });

  it("a throw half-way leaves the next call unaffected", () => {
    const broken = { kind: "metered", entitlement: "x", owner: "o", credit: "c", unit: "u", mode: "hard" } as unknown as ItemView;
    Object.defineProperty(broken, "value", {
      get() {
        throw new Error("boom");
      },
    });
    expect(() => encodeDecision(allowed([meter("a"), broken], "half"), LAYOUTS.allow)).toThrow("boom");
    const r = allowed([meter("b")]);
    expect(encodeDecision(r, LAYOUTS.allow)).toEqual(allowBytes(r));
  });
});

/** `schema` with its field `localName` changed as `change` says (a stand-in for an edited proto). */
function edited(schema: DescMessage, localName: string, change: Partial<DescField>): DescMessage {
  return { ...schema, fields: schema.fields.map((f) => (f.localName === localName ? ({ ...f, ...change } as DescField) : f)) };
}

describe("field numbers come from the descriptors", () => {
  it("a renamed field stops the module from loading", () => {
    expect(() => decisionLayout(edited(AllowResponseSchema, "plan", { localName: "planName" }))).toThrow(
      "limitr.v1.AllowResponse.plan: no such field",
    );
  });

  it("a field whose type changed stops it too", () => {
    expect(() => decisionLayout(edited(AllowResponseSchema, "allowed", { scalar: ScalarType.INT32 } as Partial<DescField>))).toThrow(
      "limitr.v1.AllowResponse.allowed: expected scalar BOOL",
    );
  });

  it("a renumbered field is written under its new number", () => {
    const layout = decisionLayout(edited(AllowResponseSchema, "plan", { number: 16 }));
    const bytes = encodeDecision({ allowed: true, reason: "OK", customerId: "c", plan: "pro", policyVersion: "v", items: [] }, layout);
    const reader = new BinaryReader(bytes);
    const fields: [number, unknown][] = [];
    while (reader.pos < reader.len) {
      const [no, wire] = reader.tag();
      fields.push([no, wire === WireType.LengthDelimited ? reader.string() : reader.int32()]);
    }
    expect(fields).toEqual([
      [1, 1],
      [2, 1],
      [5, "c"],
      [16, "pro"],
      [7, "v"],
    ]);
  });

  it("every decision response uses the tags of its own schema", () => {
    for (const [name, schema] of [...decisionSchemas, ["reserve", ReserveResponseSchema] as const]) {
      const byName = Object.fromEntries(schema.fields.map((f) => [f.localName, f.number]));
      const layout = LAYOUTS[name];
      expect(layout.schema).toBe(schema);
      expect(layout.plan >>> 3).toBe(byName.plan);
      expect(layout.items >>> 3).toBe(byName.items);
      expect(layout.deniedItem >>> 3).toBe(byName.deniedItem);
    }
  });
});

import fc from "fast-check";
import { create, equals, fromBinary, toBinary } from "@bufbuild/protobuf";
import type { DescField, DescMessage, MessageInitShape, MessageShape } from "@bufbuild/protobuf";
import { BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import { FeatureSet_FieldPresence } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import { CustomerHintSchema, UsageItemSchema } from "../../src/gen/limitr/v1/common_pb.js";
import {
  AllowRequestSchema,
  AllowResponseSchema,
  CheckRequestSchema,
  RecordRequestSchema,
  ReserveRequestSchema,
} from "../../src/gen/limitr/v1/decision_pb.js";
import { decisionRequestDecoder } from "../../src/server/decode-decision.js";
import type { RequestDecoder } from "../../src/server/decode-decision.js";

type Schema = typeof AllowRequestSchema;
type Init = MessageInitShape<Schema>;
type AnyMessage = MessageShape<DescMessage>;

const schemas = [
  ["AllowRequest", AllowRequestSchema],
  ["CheckRequest", CheckRequestSchema],
  ["RecordRequest", RecordRequestSchema],
] as const;

function decoderFor<D extends DescMessage>(schema: D): RequestDecoder<D> {
  const decoder = decisionRequestDecoder(schema);
  if (decoder === undefined) throw new Error(`no fast decoder for ${schema.typeName}`);
  return decoder;
}

/**
 * Everything about a decoded value that a caller could observe: prototypes, own keys in order,
 * property attributes, -0. `toStrictEqual` ignores key order and -0 inside `layout`'s strings.
 */
function layout(v: unknown): unknown {
  if (typeof v === "number") return Object.is(v, -0) ? "-0" : String(v);
  if (typeof v !== "object" || v === null) return v;
  const proto: unknown = Object.getPrototypeOf(v);
  return {
    proto: proto === Object.prototype ? "Object" : proto === Array.prototype ? "Array" : proto,
    extensible: Object.isExtensible(v),
    own: Reflect.ownKeys(v).map((k) => {
      const d = Object.getOwnPropertyDescriptor(v, k);
      return [k, d?.writable, d?.enumerable, d?.configurable, layout((v as Record<PropertyKey, unknown>)[k])];
    }),
  };
}

/** Asserts that `fast` cannot be told from `fromBinary(schema, bytes)` (and that this does not throw). */
function expectSame(schema: DescMessage, fast: AnyMessage, bytes: Uint8Array): void {
  const slow = fromBinary(schema, bytes);
  expect(fast).toStrictEqual(slow);
  expect(layout(fast)).toEqual(layout(slow));
  // A NaN amount makes a message unequal to a copy of itself; compare like with like.
  expect(equals(schema, fast, slow)).toBe(equals(schema, slow, fromBinary(schema, bytes)));
  expect(toBinary(schema, fast)).toEqual(toBinary(schema, slow));
}

/**
 * Decodes `bytes` as the sidecar does (fast path, else `fromBinary`) from a Buffer at `offset` in
 * its ArrayBuffer, and checks the result against `fromBinary` alone. Returns whether the fast
 * path answered.
 */
function checkBytes(schema: DescMessage, bytes: Uint8Array, offset = 0): boolean {
  const buf = Buffer.alloc(offset + bytes.length).subarray(offset);
  buf.set(bytes);
  const fast = decoderFor(schema)(buf);
  if (fast === undefined) return false; // then the sidecar calls fromBinary itself: same by construction
  expectSame(schema, fast, bytes);
  return true;
}

// ----- messages -----------------------------------------------------------------------------

// What real clients send. The fast path must answer every message made of these (without hint).
const cleanText = fc
  .oneof(
    fc.constant(""),
    fc.string({ unit: "grapheme-ascii", maxLength: 16 }),
    fc.string({ unit: "grapheme", maxLength: 12 }),
    fc.string({ unit: "binary", maxLength: 30 }), // astral planes, controls, noncharacters
  )
  .filter((s) => !s.includes("\uFFFD") && !s.startsWith("\uFEFF"));
// And what it leaves to fromBinary: a real U+FFFD, a leading BOM (fromBinary drops one), lone
// surrogates (toBinary writes them as U+FFFD).
const anyText = fc.oneof(
  { weight: 4, arbitrary: cleanText },
  {
    weight: 1,
    arbitrary: fc
      .tuple(cleanText, fc.constantFrom("\uFFFD", "\uFEFF", "\uFEFF\uFEFF", "\uD800", "\uDFFF", "x\uD83D"), cleanText, fc.boolean())
      .map(([a, odd, b, first]) => (first ? odd + a + b : a + odd + b)),
  },
);
const amount = fc.option(
  fc.oneof(
    fc.double(), // includes -0, NaN, ±Infinity
    fc.constantFrom(0, -0, NaN, Infinity, -Infinity, Number.MAX_VALUE, -Number.MAX_VALUE, Number.MIN_VALUE, 1e-310, 2 ** 53 + 2, 1),
  ),
  { nil: undefined },
);
const key = (text: fc.Arbitrary<string>) =>
  fc.oneof(text, fc.constantFrom("__proto__", "constructor", "toString", "0", "1", "4294967295", "-1", "01", "model", "request_id"));
const hint = fc.record(
  {
    plan: cleanText,
    type: cleanText,
    refs: fc.array(cleanText, { maxLength: 2 }),
    altIds: fc.array(cleanText, { maxLength: 2 }),
    metadata: fc.dictionary(cleanText, cleanText, { maxKeys: 2 }),
  },
  { requiredKeys: [] },
);

function request(text: fc.Arbitrary<string>, withHint: boolean): fc.Arbitrary<Init> {
  return fc.record(
    {
      customerId: text,
      items: fc.array(fc.record({ entitlement: text, amount, unit: text }, { requiredKeys: [] }), { maxLength: 24 }),
      // Object.fromEntries makes "__proto__" an own key, which toBinary writes and fromBinary drops.
      attributes: fc.array(fc.tuple(key(text), text), { maxLength: 6 }).map((e) => Object.fromEntries(e)),
      idempotencyKey: text,
      ...(withHint ? { customerHint: hint } : {}),
    },
    { requiredKeys: [] },
  );
}

const encode = (schema: DescMessage, init: Init): Uint8Array => toBinary(schema, create(schema as Schema, init));

describe("decisionRequestDecoder", () => {
  it.each(schemas)("%s: the fast path answers every message without customer_hint, as fromBinary does", (_name, schema) => {
    fc.assert(
      fc.property(request(cleanText, false), fc.nat(16), (init, offset) => {
        expect(checkBytes(schema, encode(schema, init), offset)).toBe(true);
      }),
      { numRuns: 500 },
    );
  });

  it.each(schemas)("%s: any message, with or without hint, odd strings: same as fromBinary", (_name, schema) => {
    fc.assert(
      fc.property(request(anyText, true), (init) => {
        const bytes = encode(schema, init);
        const taken = checkBytes(schema, bytes);
        if (init.customerHint !== undefined) expect(taken).toBe(false);
      }),
      { numRuns: 500 },
    );
  });

  it.each(schemas)("%s: two messages back to back (merged: last wins, items appended, map keys overwritten)", (_name, schema) => {
    fc.assert(
      fc.property(request(cleanText, false), request(cleanText, false), (a, b) => {
        const bytes = new Uint8Array([...encode(schema, a), ...encode(schema, b)]);
        expect(checkBytes(schema, bytes)).toBe(true);
      }),
      { numRuns: 300 },
    );
  });

  it("spelled out: zero message, amount presence, -0, map keys", () => {
    const decode = decoderFor(AllowRequestSchema);
    const empty = decode(Buffer.alloc(0));
    expect(empty).toBeDefined();
    expect(Object.keys(empty ?? {})).toEqual(["$typeName", "customerId", "items", "attributes", "idempotencyKey"]);
    expectSame(AllowRequestSchema, empty!, new Uint8Array());

    const init: Init = {
      customerId: "cüs-😀",
      items: [{ entitlement: "a" }, { entitlement: "b", amount: 0 }, { entitlement: "c", amount: -0, unit: "MB" }],
      attributes: { model: "gpt-4o", "1": "one", __proto__x: "p" },
    };
    const bytes = encode(AllowRequestSchema, init);
    const fast = decode(Buffer.from(bytes));
    expect(fast).toBeDefined();
    expectSame(AllowRequestSchema, fast!, bytes);
    expect("amount" in fast!.items[0]!).toBe(false);
    expect(Object.keys(fast!.items[1]!)).toEqual(["$typeName", "entitlement", "unit", "amount"]);
    expect(Object.is(fast!.items[2]!.amount, -0)).toBe(true);
    expect(Object.keys(fast!.attributes)).toEqual(["1", "model", "__proto__x"]);
  });

  it("spelled out: duplicate map keys and a __proto__ key, on the wire", () => {
    const w = new BinaryWriter();
    for (const [k, v] of [["b", "1"], ["a", "2"], ["b", "3"], ["__proto__", "4"], ["0", "5"]] as const) {
      w.tag(4, WireType.LengthDelimited).fork().tag(1, WireType.LengthDelimited).string(k).tag(2, WireType.LengthDelimited).string(v).join();
    }
    const bytes = w.finish();
    const fast = decoderFor(AllowRequestSchema)(Buffer.from(bytes));
    expect(fast).toBeDefined();
    expectSame(AllowRequestSchema, fast!, bytes);
    expect(Object.getPrototypeOf(fast!.attributes)).toBe(Object.prototype);
    expect(Object.keys(fast!.attributes)).toEqual(["0", "b", "a"]);
    expect(fast!.attributes.b).toBe("3");
  });

  it("spelled out: what it leaves to fromBinary", () => {
    const decode = decoderFor(RecordRequestSchema);
    const field1 = (bytes: number[]) => Buffer.from([0x0a, bytes.length, ...bytes]);
    // Invalid UTF-8: fromBinary throws.
    expect(decode(field1([0xff]))).toBeUndefined();
    expect(() => fromBinary(RecordRequestSchema, field1([0xff]))).toThrow();
    // A leading BOM: fromBinary's TextDecoder drops it, Node's would keep it.
    expect(decode(field1([0xef, 0xbb, 0xbf, 0x41]))).toBeUndefined();
    expect(fromBinary(RecordRequestSchema, field1([0xef, 0xbb, 0xbf, 0x41])).customerId).toBe("A");
    // customer_hint, unknown fields, a field number with the wrong wire type.
    expect(decode(Buffer.from(toBinary(RecordRequestSchema, create(RecordRequestSchema, { customerHint: {} }))))).toBeUndefined();
    expect(decode(Buffer.from([0x30, 0x01]))).toBeUndefined();
    expect(decode(Buffer.from([0x08, 0x01]))).toBeUndefined();
    // An amount running past the end of its item: fromBinary reads it whole and carries on after it.
    const overrun = Buffer.from([0x12, 0x06, 0x11, 0, 0, 0, 0, 0, 0x2a, 0x01, 0x41]);
    expect(decode(overrun)).toBeUndefined();
    expect(fromBinary(RecordRequestSchema, overrun)).toMatchObject({ items: [{ amount: expect.any(Number) }], idempotencyKey: "" });
    // A map entry without a value: fromBinary makes it "".
    expect(decode(Buffer.from([0x22, 0x03, 0x0a, 0x01, 0x6b]))).toBeUndefined();
    expect(fromBinary(RecordRequestSchema, Buffer.from([0x22, 0x03, 0x0a, 0x01, 0x6b])).attributes).toEqual({ k: "" });
  });

  it("is made for the three decision requests only", () => {
    for (const [, schema] of schemas) expect(decisionRequestDecoder(schema)).toBeTypeOf("function");
    for (const schema of [ReserveRequestSchema, AllowResponseSchema, UsageItemSchema, CustomerHintSchema]) {
      expect(decisionRequestDecoder(schema)).toBeUndefined();
    }
  });

  it("a changed proto turns the fast path off instead of building another message", () => {
    const edited = (schema: DescMessage, localName: string, change: Partial<DescField>): DescMessage => ({
      ...schema,
      fields: schema.fields.map((f) => (f.localName === localName ? ({ ...f, ...change } as DescField) : f)),
    });
    expect(decisionRequestDecoder(edited(AllowRequestSchema, "idempotencyKey", { number: 6 }))).toBeUndefined();
    expect(decisionRequestDecoder(edited(AllowRequestSchema, "customerId", { localName: "customer" }))).toBeUndefined();
    expect(decisionRequestDecoder({ ...AllowRequestSchema, fields: [...AllowRequestSchema.fields, AllowRequestSchema.fields[0]!] })).toBeUndefined();
    const items = AllowRequestSchema.fields.find((f) => f.localName === "items");
    if (items?.fieldKind !== "list" || items.listKind !== "message") throw new Error("items is not a message list");
    const implicitAmount = edited(items.message, "amount", { presence: FeatureSet_FieldPresence.IMPLICIT } as Partial<DescField>);
    expect(decisionRequestDecoder(edited(AllowRequestSchema, "items", { message: implicitAmount } as Partial<DescField>))).toBeUndefined();
  });
});

// ----- bytes --------------------------------------------------------------------------------

/** `n` as a varint, made `pad` bytes longer than needed (still valid protobuf, not canonical). */
function varint(n: number, pad = 0): number[] {
  const out: number[] = [];
  while (n > 0x7f) {
    out.push((n & 0x7f) | 0x80);
    n = Math.floor(n / 128);
  }
  out.push(n);
  for (let i = 0; i < pad; i++) {
    out[out.length - 1]! |= 0x80;
    out.push(0);
  }
  return out;
}
const pad = fc.oneof({ weight: 12, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.integer({ min: 1, max: 10 }) });
const utf8 = (s: string): number[] => [...Buffer.from(s, "utf8")];
const flat = (parts: number[][]): number[] => parts.flat();

// Mostly the truth; sometimes short, so that the field's contents run on past its end.
const shortBy = fc.oneof({ weight: 12, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.integer({ min: 1, max: 9 }) });

/** A length-delimited field; the length sometimes padded, sometimes too short. */
function ld(no: number, payload: fc.Arbitrary<number[]>): fc.Arbitrary<number[]> {
  return fc
    .tuple(payload, pad, shortBy)
    .map(([p, n, short]) => [...varint(no * 8 + 2), ...varint(Math.max(0, p.length - short), n), ...p]);
}

const stringBytes: fc.Arbitrary<number[]> = fc.oneof(
  { weight: 8, arbitrary: cleanText.map(utf8) },
  {
    weight: 2,
    arbitrary: fc
      .tuple(
        cleanText,
        fc.constantFrom(
          [0xff], // never valid
          [0xc0, 0x80], // overlong NUL
          [0xed, 0xa0, 0x80], // a surrogate
          [0xf4, 0x90, 0x80, 0x80], // past U+10FFFF
          [0xe2, 0x82], // truncated
          [0xf0, 0x9f, 0x98], // truncated astral
          [0x80], // lone continuation
          [0xef, 0xbb, 0xbf], // BOM
          [0xef, 0xbf, 0xbd], // U+FFFD
        ),
        cleanText,
      )
      .map(([a, odd, b]) => [...utf8(a), ...odd, ...utf8(b)]),
  },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 8 }).map((a) => [...a]) },
);
const doubleBytes: fc.Arbitrary<number[]> = fc.oneof(
  fc.double().map((d) => {
    const b = Buffer.alloc(8);
    b.writeDoubleLE(d);
    return [...b];
  }),
  fc.uint8Array({ minLength: 8, maxLength: 8 }).map((a) => [...a]),
  // Ends in a whole field (idempotency_key "A"), seen as one when the item's length is too short.
  fc.uint8Array({ minLength: 5, maxLength: 5 }).map((a) => [...a, 0x2a, 0x01, 0x41]),
  // NaNs with payloads, quiet and signalling, both signs.
  fc.constantFrom("010000000000f87f", "010000000000f07f", "000000000000f8ff", "ffffffffffffff7f", "000000000000f0ff").map((h) => [...Buffer.from(h, "hex")]),
);
/** Any field at all: unknown and known numbers, every wire type (and invalid ones), odd tags. */
const rawField: fc.Arbitrary<number[]> = fc
  .record({
    no: fc.oneof(fc.integer({ min: 0, max: 8 }), fc.integer({ min: 9, max: 3000 }), fc.constant(2 ** 29 - 1)),
    wt: fc.integer({ min: 0, max: 7 }),
    tagPad: pad,
    payload: fc.uint8Array({ maxLength: 10 }).map((a) => [...a]),
    v: fc.oneof(fc.nat(300), fc.nat()),
  })
  .map(({ no, wt, tagPad, payload, v }) => {
    const tag = varint(no * 8 + wt, tagPad);
    switch (wt) {
      case WireType.Varint:
        return [...tag, ...varint(v)];
      case WireType.Bit64:
        return [...tag, ...[...payload, 0, 0, 0, 0, 0, 0, 0, 0].slice(0, 8)];
      case WireType.LengthDelimited:
        return [...tag, ...varint(payload.length), ...payload];
      case WireType.StartGroup:
        return v % 2 ? [...tag, ...varint(no * 8 + WireType.EndGroup)] : tag;
      case WireType.Bit32:
        return [...tag, ...[...payload, 0, 0, 0, 0].slice(0, 4)];
      default:
        return tag;
    }
  });

const itemBytes = fc
  .array(
    fc.oneof(
      { weight: 4, arbitrary: ld(1, stringBytes) },
      { weight: 4, arbitrary: doubleBytes.map((d) => [0x11, ...d]) },
      { weight: 4, arbitrary: ld(3, stringBytes) },
      { weight: 1, arbitrary: rawField },
    ),
    { maxLength: 5 },
  )
  .map(flat);
const entryBytes = fc.oneof(
  { weight: 6, arbitrary: fc.tuple(ld(1, stringBytes), ld(2, stringBytes)).map(flat) },
  {
    weight: 2,
    arbitrary: fc
      .array(fc.oneof({ weight: 4, arbitrary: ld(1, stringBytes) }, { weight: 4, arbitrary: ld(2, stringBytes) }, { weight: 1, arbitrary: rawField }), {
        maxLength: 4,
      })
      .map(flat),
  },
);
const hintBytes = hint.map((h) => [...toBinary(CustomerHintSchema, create(CustomerHintSchema, h))]);
/** Hand-built requests: fields in any order and number, mostly the common shape. */
const messageBytes: fc.Arbitrary<Uint8Array> = fc
  .array(
    fc.oneof(
      { weight: 4, arbitrary: ld(1, stringBytes) },
      { weight: 4, arbitrary: ld(2, itemBytes) },
      { weight: 4, arbitrary: ld(4, entryBytes) },
      { weight: 3, arbitrary: ld(5, stringBytes) },
      { weight: 1, arbitrary: ld(3, hintBytes) },
      { weight: 1, arbitrary: rawField },
    ),
    { maxLength: 10 },
  )
  .map((parts) => new Uint8Array(flat(parts)));

describe("decoding bytes as the sidecar does (fast path, else fromBinary) is fromBinary", () => {
  it.each(schemas)("%s: hand-built requests", (_name, schema) => {
    let taken = 0;
    const runs = 3000;
    fc.assert(
      fc.property(messageBytes, fc.nat(8), (bytes, offset) => {
        if (checkBytes(schema, bytes, offset)) taken++;
      }),
      { numRuns: runs },
    );
    // Both paths must be exercised for the comparison to mean anything.
    expect(taken).toBeGreaterThan(runs / 10);
    expect(taken).toBeLessThan(runs * 0.9);
  });

  it.each(schemas)("%s: every truncation of a valid request", (_name, schema) => {
    fc.assert(
      fc.property(request(cleanText, false), (init) => {
        const bytes = encode(schema, init);
        for (let cut = 0; cut < bytes.length; cut++) checkBytes(schema, bytes.subarray(0, cut));
      }),
      { numRuns: 200 },
    );
  });

  it.each(schemas)("%s: a field inserted into, or a byte changed in, a valid request", (_name, schema) => {
    fc.assert(
      fc.property(request(cleanText, false), rawField, fc.nat(), fc.nat(255), (init, field, at, byte) => {
        const bytes = [...encode(schema, init)];
        const i = bytes.length === 0 ? 0 : at % bytes.length;
        checkBytes(schema, new Uint8Array([...bytes, ...field]));
        checkBytes(schema, new Uint8Array([...field, ...bytes]));
        checkBytes(schema, new Uint8Array([...bytes.slice(0, i), ...field, ...bytes.slice(i)]));
        checkBytes(schema, new Uint8Array([...bytes.slice(0, i), byte, ...bytes.slice(i + 1)]));
        checkBytes(schema, new Uint8Array([...bytes.slice(0, i), byte, ...bytes.slice(i)]));
      }),
      { numRuns: 500 },
    );
  });

  it.each(schemas)("%s: random bytes", (_name, schema) => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
        checkBytes(schema, bytes);
      }),
      { numRuns: 1000 },
    );
  });
});

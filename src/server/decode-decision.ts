/**
 * AllowRequest, CheckRequest and RecordRequest decoded straight from the request Buffer, without
 * protobuf-es reflection: reflective `fromBinary` was about 3 µs of the ~90 µs of CPU per Allow
 * (readMessage, findNumber, createZeroMessage, BinaryReader, reflect set, TextDecoder).
 *
 * The fallback rule: this decoder only ever answers for the common shape, and answers exactly what
 * `fromBinary` would. Anything else is "not handled" (`undefined`) and the caller must use
 * `fromBinary`, which then decides, error or message. "The common shape" is fields 1, 2, 4 and 5,
 * each with its one canonical single-byte tag; UsageItem fields 1–3 and map entries with both a
 * key and a value (repeats inside them last-wins, as in `fromBinary`); every length inside its
 * enclosing message; strings valid UTF-8 without a leading BOM and without U+FFFD. Unknown fields
 * (they would need `$unknown`), customer_hint (rare; a nested message), other wire types,
 * non-canonical tags, lengths of 5+ bytes and truncated input all fall back, because `fromBinary`
 * has quirks there that are not worth copying (it ignores wire types of known fields, lets a
 * nested field run past its message's end, does not skip unknown fields inside map entries).
 *
 * The message built is the one `fromBinary` builds for a proto3 file: a plain object with
 * `$typeName` and the implicit-presence fields in declaration order, `customerHint` absent,
 * `amount` an own property only when present on the wire (after `unit`, where `fromBinary`'s
 * assignment puts it), and `attributes` a plain object filled by assignment in wire order. The
 * descriptors are checked for exactly that shape when a decoder is made: a changed proto turns the
 * fast path off (the tests then fail) instead of building a different message.
 *
 * Assumes protobuf-es's default text encoding (`configureTextEncoding` is never called here).
 * test/server/decode-decision.test.ts proves the equality over random messages and random bytes.
 */
import { ScalarType } from "@bufbuild/protobuf";
import type { DescField, DescMessage, MessageShape } from "@bufbuild/protobuf";
import { Edition, FeatureSet_FieldPresence } from "@bufbuild/protobuf/wkt";
import type { UsageItem } from "../gen/limitr/v1/common_pb.js";
import { AllowRequestSchema, CheckRequestSchema, RecordRequestSchema } from "../gen/limitr/v1/decision_pb.js";
import type { AllowRequest, CheckRequest, RecordRequest } from "../gen/limitr/v1/decision_pb.js";

/** A decoder for one request type: the message, or `undefined` when `fromBinary` must decide. */
export type RequestDecoder<D extends DescMessage> = (buf: Buffer) => MessageShape<D> | undefined;

type DecisionRequest = AllowRequest | CheckRequest | RecordRequest;

// By name, not identity, so that the tests can hand in edited copies of these descriptors.
const SUPPORTED: ReadonlySet<string> = new Set([AllowRequestSchema, CheckRequestSchema, RecordRequestSchema].map((s) => s.typeName));

/**
 * The fast decoder for `schema` if it is one of the three decision requests and still has the
 * shape this module builds; `undefined` otherwise (then always use `fromBinary`).
 */
export function decisionRequestDecoder<D extends DescMessage>(schema: D): RequestDecoder<D> | undefined {
  if (!CAN_SLICE || !SUPPORTED.has(schema.typeName) || !hasCommonShape(schema)) return undefined;
  const typeName = schema.typeName as DecisionRequest["$typeName"];
  return (buf) => decodeCommon(typeName, buf as Bytes) as MessageShape<D> | undefined;
}

// Tags (field number << 3 | wire type) of the common shape; one byte each.
const CUSTOMER_ID = 0x0a; // 1, LEN
const ITEM = 0x12; // 2, LEN
const ATTRIBUTE = 0x22; // 4, LEN
const IDEMPOTENCY_KEY = 0x2a; // 5, LEN
const ENTITLEMENT = 0x0a; // UsageItem 1, LEN
const AMOUNT = 0x11; // UsageItem 2, I64
const UNIT = 0x1a; // UsageItem 3, LEN
const KEY = 0x0a; // map entry 1, LEN
const VALUE = 0x12; // map entry 2, LEN

const USAGE_ITEM = "limitr.v1.UsageItem";

/** Where the last `lengthAt` left off: the first byte after the length varint. */
let after = 0;

/**
 * The length prefix at `p` (at most 4 varint bytes, all before `end`), or -1. Sets `after`.
 * Longer prefixes cannot be a length within the request size limit unless padded; fall back.
 */
function lengthAt(buf: Bytes, p: number, end: number): number {
  let n = 0;
  for (let shift = 0; shift < 28; shift += 7) {
    if (p >= end) return -1;
    const b = buf[p++]!;
    n |= (b & 0x7f) << shift;
    if (b < 0x80) {
      after = p;
      return n;
    }
  }
  return -1;
}

/**
 * The length-prefixed string whose length varint is at `p` (all before `end`), or undefined.
 * Sets `after` to the first byte past it.
 */
function stringAt(buf: Bytes, p: number, end: number): string | undefined {
  const len = lengthAt(buf, p, end);
  if (len < 0) return undefined;
  const start = after;
  const stop = start + len;
  if (stop > end) return undefined;
  after = stop;
  return text(buf, start, stop);
}

/**
 * Node's own decoders behind `buf.toString`, undocumented but there since Node 0.x; calling them
 * directly saves the argument checks, about 20 ns a string. Without them the fast path is off.
 */
interface Slicing {
  latin1Slice(start: number, end: number): string;
  utf8Slice(start: number, end: number): string;
}
type Bytes = Buffer & Slicing;
const CAN_SLICE =
  typeof (Buffer.prototype as Partial<Slicing>).latin1Slice === "function" &&
  typeof (Buffer.prototype as Partial<Slicing>).utf8Slice === "function";

/**
 * The UTF-8 text of `buf[start, stop)`, as the fatal TextDecoder behind `fromBinary` decodes it,
 * or `undefined` where Node's decoder differs from it or cannot tell: Node substitutes U+FFFD for
 * invalid UTF-8 (the TextDecoder throws) and keeps a leading BOM (the TextDecoder drops it). A real
 * U+FFFD or a leading BOM is rare enough to leave to `fromBinary`.
 */
function text(buf: Bytes, start: number, stop: number): string | undefined {
  for (let i = start; i < stop; i++) {
    if (buf[i]! >= 0x80) {
      const s = buf.utf8Slice(start, stop);
      return s.includes("\uFFFD") || s.charCodeAt(0) === 0xfeff ? undefined : s;
    }
  }
  // ASCII (nearly every id, name and unit): Latin-1 is the same text, without UTF-8 decoding.
  return buf.latin1Slice(start, stop);
}

function decodeCommon(typeName: DecisionRequest["$typeName"], buf: Bytes): DecisionRequest | undefined {
  const end = buf.length;
  let customerId = "";
  let idempotencyKey = "";
  const items: UsageItem[] = [];
  const attributes: Record<string, string> = {};
  let p = 0;
  while (p < end) {
    const tag = buf[p]!;
    const len = lengthAt(buf, p + 1, end);
    if (len < 0) return undefined;
    const start = after;
    const stop = start + len;
    if (stop > end) return undefined;
    switch (tag) {
      case CUSTOMER_ID: {
        const s = text(buf, start, stop);
        if (s === undefined) return undefined;
        customerId = s;
        break;
      }
      case ITEM: {
        const item = decodeItem(buf, start, stop);
        if (item === undefined) return undefined;
        items.push(item);
        break;
      }
      case ATTRIBUTE:
        if (!decodeEntry(buf, start, stop, attributes)) return undefined;
        break;
      case IDEMPOTENCY_KEY: {
        const s = text(buf, start, stop);
        if (s === undefined) return undefined;
        idempotencyKey = s;
        break;
      }
      default:
        // Including customer_hint (0x1a): rare, and a whole nested message to copy.
        return undefined;
    }
    p = stop;
  }
  return { $typeName: typeName, customerId, items, attributes, idempotencyKey };
}

function decodeItem(buf: Bytes, p: number, end: number): UsageItem | undefined {
  let entitlement = "";
  let unit = "";
  let amount = 0;
  let hasAmount = false;
  while (p < end) {
    const tag = buf[p]!;
    if (tag === AMOUNT) {
      if (p + 9 > end) return undefined;
      amount = buf.readDoubleLE(p + 1);
      hasAmount = true;
      p += 9;
      continue;
    }
    if (tag !== ENTITLEMENT && tag !== UNIT) return undefined;
    const s = stringAt(buf, p + 1, end);
    if (s === undefined) return undefined;
    if (tag === ENTITLEMENT) entitlement = s;
    else unit = s;
    p = after;
  }
  return hasAmount ? { $typeName: USAGE_ITEM, entitlement, unit, amount } : { $typeName: USAGE_ITEM, entitlement, unit };
}

/** Adds the map entry in `buf[p, end)` to `into`; false when it is not handled. */
function decodeEntry(buf: Bytes, p: number, end: number, into: Record<string, string>): boolean {
  let key: string | undefined;
  let value: string | undefined;
  while (p < end) {
    const tag = buf[p]!;
    if (tag !== KEY && tag !== VALUE) return false;
    const s = stringAt(buf, p + 1, end);
    if (s === undefined) return false;
    if (tag === KEY) key = s;
    else value = s;
    p = after;
  }
  // `fromBinary` defaults a missing key or value to ""; encoders write both, so leave it to it.
  if (key === undefined || value === undefined) return false;
  // Plain assignment, as protobuf-es's ReflectMap.set does (same order, last wins, same "__proto__").
  into[key] = value;
  return true;
}

const IMPLICIT = FeatureSet_FieldPresence.IMPLICIT;
const EXPLICIT = FeatureSet_FieldPresence.EXPLICIT;

function isString(f: DescField | undefined, localName: string): boolean {
  return (
    f !== undefined &&
    f.localName === localName &&
    f.fieldKind === "scalar" &&
    f.scalar === ScalarType.STRING &&
    f.presence === IMPLICIT &&
    f.utf8Validation &&
    f.oneof === undefined
  );
}

/** Whether `desc` is a proto3 message whose fields are exactly `expected` (by number). */
function fieldsAre(desc: DescMessage, expected: Record<number, (f: DescField | undefined) => boolean>): boolean {
  const numbers = Object.keys(expected).map(Number);
  return (
    desc.file.edition === Edition.EDITION_PROTO3 &&
    desc.fields.length === numbers.length &&
    desc.members.length === numbers.length &&
    numbers.every((n) => expected[n]!(desc.fields.find((f) => f.number === n)))
  );
}

function isUsageItem(desc: DescMessage): boolean {
  return (
    desc.typeName === USAGE_ITEM &&
    fieldsAre(desc, {
      1: (f) => isString(f, "entitlement"),
      2: (f) =>
        f?.localName === "amount" &&
        f.fieldKind === "scalar" &&
        f.scalar === ScalarType.DOUBLE &&
        f.presence === EXPLICIT &&
        f.oneof === undefined,
      3: (f) => isString(f, "unit"),
    })
  );
}

function hasCommonShape(desc: DescMessage): boolean {
  return fieldsAre(desc, {
    1: (f) => isString(f, "customerId"),
    2: (f) =>
      f?.localName === "items" &&
      f.fieldKind === "list" &&
      f.listKind === "message" &&
      !f.delimitedEncoding &&
      isUsageItem(f.message),
    // Never decoded here; absent, it must be no own property (explicit presence).
    3: (f) => f?.localName === "customerHint" && f.fieldKind === "message" && f.oneof === undefined,
    4: (f) =>
      f?.localName === "attributes" &&
      f.fieldKind === "map" &&
      f.mapKey === ScalarType.STRING &&
      f.mapKind === "scalar" &&
      f.scalar === ScalarType.STRING &&
      f.utf8Validation,
    5: (f) => isString(f, "idempotencyKey"),
  });
}

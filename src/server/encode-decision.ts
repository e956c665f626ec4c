/**
 * Decision responses (Allow, Check, Record, Settle, Reserve) encoded straight from the engine's
 * `DecisionResult` with a `BinaryWriter`, without protobuf-es reflection and without building the
 * intermediate init object and message: that was about a sixth of the sidecar's CPU per Allow.
 *
 * Every field number comes from the generated descriptors, looked up by name (and checked for the
 * expected type) when this module loads: a renamed field or a changed type fails at start-up, a
 * renumbered one is followed. test/server/encode-decision.test.ts proves the bytes equal
 * `toBinary(schema, create(schema, toDecisionFields(result)))` over random results.
 */
import { ScalarType } from "@bufbuild/protobuf";
import type { DescField, DescMessage, MessageInitShape } from "@bufbuild/protobuf";
import { BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import { FeatureSet_FieldPresence, TimestampSchema } from "@bufbuild/protobuf/wkt";
import type { DecisionResult, ItemView } from "../engine/index.js";
import { MeterKind, MeterStateSchema } from "../gen/limitr/v1/common_pb.js";
import {
  AllowResponseSchema,
  CheckResponseSchema,
  RecordResponseSchema,
  ReserveResponseSchema,
  SettleResponseSchema,
} from "../gen/limitr/v1/decision_pb.js";
import type { ReserveResponseSchema as ReserveSchema } from "../gen/limitr/v1/decision_pb.js";
import { num, toLimitModePb, toMeterState, toReasonPb, toTimestamp } from "./map-common.js";
import { toWire, wireSchema } from "./wire-encodable.js";
import type { WireEncodable } from "./wire-encodable.js";

/** What a field must be for the encoder below to write it correctly. */
type Expect =
  | { readonly scalar: ScalarType; readonly optional?: boolean }
  | { readonly enum: true }
  | { readonly message: DescMessage; readonly list?: boolean };

/**
 * The tag (`number << 3 | wire type`) of `schema`'s field `localName`, after checking that the
 * field has the expected type. Throws (at module load) when the proto no longer matches.
 */
function tagOf(schema: DescMessage, localName: string, expect: Expect): number {
  const f: DescField | undefined = schema.fields.find((x) => x.localName === localName);
  const wrong = (what: string): Error =>
    new Error(`${schema.typeName}.${localName}: ${what}; update src/server/encode-decision.ts to match the proto`);
  if (f === undefined) throw wrong("no such field");
  let wire: WireType;
  if ("scalar" in expect) {
    if (f.fieldKind !== "scalar" || f.scalar !== expect.scalar) throw wrong(`expected scalar ${ScalarType[expect.scalar]}`);
    if ((expect.optional ?? false) !== (f.presence === FeatureSet_FieldPresence.EXPLICIT)) throw wrong("presence changed");
    wire =
      expect.scalar === ScalarType.DOUBLE
        ? WireType.Bit64
        : expect.scalar === ScalarType.STRING
          ? WireType.LengthDelimited
          : WireType.Varint;
  } else if ("enum" in expect) {
    if (f.fieldKind !== "enum") throw wrong("expected an enum");
    wire = WireType.Varint;
  } else {
    const ok = expect.list ? f.fieldKind === "list" && f.listKind === "message" : f.fieldKind === "message";
    if (!ok || f.message?.typeName !== expect.message.typeName) throw wrong(`expected ${expect.list ? "repeated " : ""}${expect.message.typeName}`);
    wire = WireType.LengthDelimited;
  }
  return ((f.number << 3) | wire) >>> 0;
}

const str = { scalar: ScalarType.STRING } as const;
const dbl = { scalar: ScalarType.DOUBLE } as const;

/** The tags of one decision response message. */
export interface DecisionLayout {
  readonly schema: DescMessage;
  readonly allowed: number;
  readonly reason: number;
  readonly deniedItem: number;
  readonly items: number;
  readonly customerId: number;
  readonly plan: number;
  readonly policyVersion: number;
  /** Reserve only. */
  readonly reservationId: number | undefined;
  readonly reservationExpiresAt: number | undefined;
}

/** Looks up a decision response's tags (exported for the drift test). */
export function decisionLayout(schema: DescMessage, reservation = false): DecisionLayout {
  return {
    schema,
    allowed: tagOf(schema, "allowed", { scalar: ScalarType.BOOL }),
    reason: tagOf(schema, "reason", { enum: true }),
    deniedItem: tagOf(schema, "deniedItem", { scalar: ScalarType.INT32, optional: true }),
    items: tagOf(schema, "items", { message: MeterStateSchema, list: true }),
    customerId: tagOf(schema, "customerId", str),
    plan: tagOf(schema, "plan", str),
    policyVersion: tagOf(schema, "policyVersion", str),
    reservationId: reservation ? tagOf(schema, "reservationId", str) : undefined,
    reservationExpiresAt: reservation ? tagOf(schema, "reservationExpiresAt", { message: TimestampSchema }) : undefined,
  };
}

const M = {
  entitlement: tagOf(MeterStateSchema, "entitlement", str),
  kind: tagOf(MeterStateSchema, "kind", { enum: true }),
  granted: tagOf(MeterStateSchema, "granted", { scalar: ScalarType.BOOL }),
  owner: tagOf(MeterStateSchema, "owner", str),
  credit: tagOf(MeterStateSchema, "credit", str),
  unit: tagOf(MeterStateSchema, "unit", str),
  mode: tagOf(MeterStateSchema, "mode", { enum: true }),
  value: tagOf(MeterStateSchema, "value", dbl),
  limit: tagOf(MeterStateSchema, "limit", dbl),
  remaining: tagOf(MeterStateSchema, "remaining", dbl),
  held: tagOf(MeterStateSchema, "held", dbl),
  overage: tagOf(MeterStateSchema, "overage", dbl),
  periodStart: tagOf(MeterStateSchema, "periodStart", { message: TimestampSchema }),
  nextReset: tagOf(MeterStateSchema, "nextReset", { message: TimestampSchema }),
};
const T = {
  seconds: tagOf(TimestampSchema, "seconds", { scalar: ScalarType.INT64 }),
  nanos: tagOf(TimestampSchema, "nanos", { scalar: ScalarType.INT32 }),
  secondsSize: 0,
  nanosSize: 0,
};
T.secondsSize = tagBytes(T.seconds).length;
T.nanosSize = tagBytes(T.nanos).length;

/** The layouts of the decision responses. */
export const LAYOUTS = {
  allow: decisionLayout(AllowResponseSchema),
  check: decisionLayout(CheckResponseSchema),
  record: decisionLayout(RecordResponseSchema),
  settle: decisionLayout(SettleResponseSchema),
  reserve: decisionLayout(ReserveResponseSchema, true),
} as const;

/**
 * UTF-8 through Buffer.from: the same bytes as TextEncoder (unpaired surrogates become U+FFFD in
 * both), but small strings are cut from Node's buffer pool instead of each getting a new
 * ArrayBuffer; TextEncoder was the largest single cost of the writer.
 */
function encodeUtf8(s: string): Uint8Array {
  return Buffer.from(s, "utf8");
}

// One writer for the process: encoding is synchronous and `finish()` leaves it empty. A throw
// half-way would leave it mid-message, so it is replaced then.
let writer = new BinaryWriter(encodeUtf8);

const INT32_MAX = 0x7fffffff;

function string(w: BinaryWriter, tag: number, v: string): void {
  if (v !== "") w.uint32(tag).string(v);
}

/** Bytes of `v` as a varint written by `int32()`/`int64()` (negatives take 10). */
function varintSize(v: number): number {
  if (v < 0) return 10;
  let n = 1;
  while (v >= 128) {
    v = Math.floor(v / 128);
    n++;
  }
  return n;
}

/**
 * A Timestamp as `timestampFromMs` makes it (floor seconds, non-negative nanos). Its length is
 * known up front, so it is written in place rather than through `fork()`/`join()`, which copy.
 */
function timestamp(w: BinaryWriter, tag: number, ms: number): void {
  const seconds = Math.floor(ms / 1000);
  const nanos = (ms - seconds * 1000) * 1_000_000;
  const size = (seconds !== 0 ? T.secondsSize + varintSize(seconds) : 0) + (nanos !== 0 ? T.nanosSize + varintSize(nanos) : 0);
  w.uint32(tag).uint32(size);
  if (seconds !== 0) {
    // int64 and int32 varints are the same bytes for values in int32 range (negatives are
    // sign-extended to 64 bits by both); int32 avoids a bigint.
    w.uint32(T.seconds);
    if (seconds <= INT32_MAX && seconds >= -INT32_MAX - 1) w.int32(seconds);
    else w.int64(seconds);
  }
  if (nanos !== 0) w.uint32(T.nanos).int32(nanos);
}

/** A varint tag as bytes. */
function tagBytes(tag: number): Uint8Array {
  const out: number[] = [];
  while (tag > 0x7f) {
    out.push((tag & 0x7f) | 0x80);
    tag >>>= 7;
  }
  out.push(tag);
  return new Uint8Array(out);
}

const Q = [M.value, M.limit, M.remaining, M.held, M.overage].map(tagBytes) as [Uint8Array, Uint8Array, Uint8Array, Uint8Array, Uint8Array];

/** proto3 implicit presence: a double is written unless it is +0 (protobuf-es keeps -0). */
function present(v: number): boolean {
  return v !== 0 || 1 / v < 0;
}

function putDouble(chunk: Uint8Array, view: DataView, pos: number, tag: Uint8Array, v: number): number {
  if (!present(v)) return pos;
  chunk.set(tag, pos);
  view.setFloat64(pos + tag.length, v, true);
  return pos + tag.length + 8;
}

/**
 * value, limit, remaining, held and overage as one chunk: `BinaryWriter.double()` allocates an
 * array and a DataView per value, and the tag before it becomes a chunk of its own.
 */
function quantities(w: BinaryWriter, value: number, limit: number, remaining: number, held: number, overage: number): void {
  const size =
    (present(value) ? Q[0].length + 8 : 0) +
    (present(limit) ? Q[1].length + 8 : 0) +
    (present(remaining) ? Q[2].length + 8 : 0) +
    (present(held) ? Q[3].length + 8 : 0) +
    (present(overage) ? Q[4].length + 8 : 0);
  if (size === 0) return;
  const chunk = new Uint8Array(size);
  const view = new DataView(chunk.buffer);
  let pos = putDouble(chunk, view, 0, Q[0], value);
  pos = putDouble(chunk, view, pos, Q[1], limit);
  pos = putDouble(chunk, view, pos, Q[2], remaining);
  pos = putDouble(chunk, view, pos, Q[3], held);
  putDouble(chunk, view, pos, Q[4], overage);
  w.raw(chunk);
}

function meterState(w: BinaryWriter, v: ItemView): void {
  string(w, M.entitlement, v.entitlement);
  if (v.kind === "feature") {
    w.uint32(M.kind).int32(MeterKind.FEATURE);
    if (v.granted) w.uint32(M.granted).bool(true);
    return;
  }
  w.uint32(M.kind).int32(MeterKind.METERED);
  w.uint32(M.granted).bool(true);
  string(w, M.owner, v.owner);
  string(w, M.credit, v.credit);
  string(w, M.unit, v.unit);
  const mode = toLimitModePb(v.mode);
  if (mode !== 0) w.uint32(M.mode).int32(mode);
  quantities(w, num(v.value), num(v.limit), num(v.remaining), num(v.held), num(v.overage));
  timestamp(w, M.periodStart, v.periodStart);
  if (v.nextReset !== undefined) timestamp(w, M.nextReset, v.nextReset);
}

/**
 * The binary encoding of `r` as the response described by `layout`; the same bytes as
 * `toBinary(schema, create(schema, toDecisionFields(r)))` (or `toReserveFields` for Reserve).
 */
export function encodeDecision(r: DecisionResult, layout: DecisionLayout): Uint8Array {
  const w = writer;
  try {
    if (r.allowed) w.uint32(layout.allowed).bool(true);
    const reason = toReasonPb(r.reason);
    if (reason !== 0) w.uint32(layout.reason).int32(reason);
    if (!r.allowed) w.uint32(layout.deniedItem).int32(r.deniedItem);
    for (const item of r.items) {
      w.uint32(layout.items).fork();
      meterState(w, item);
      w.join();
    }
    string(w, layout.customerId, r.customerId);
    string(w, layout.plan, r.plan);
    string(w, layout.policyVersion, r.policyVersion);
    if (layout.reservationId !== undefined) string(w, layout.reservationId, r.reservationId ?? "");
    if (layout.reservationExpiresAt !== undefined && r.reservationExpiresAt !== undefined) {
      timestamp(w, layout.reservationExpiresAt, r.reservationExpiresAt);
    }
    return w.finish();
  } catch (e) {
    writer = new BinaryWriter(encodeUtf8);
    throw e;
  }
}

/** The decision fields every decision response carries, as a message init shape. */
export type DecisionInit = Omit<MessageInitShape<typeof AllowResponseSchema>, "$typeName">;
/** Reserve's response fields. */
export type ReserveInit = Omit<MessageInitShape<typeof ReserveSchema>, "$typeName">;

/**
 * A decision response: to connect-node (and the metrics observer) a message init shape whose
 * fields are computed from the result when read; to the grpc-js bridge an object that encodes
 * itself with `encodeDecision`. Nothing is converted unless someone reads it.
 */
class DecisionReply implements WireEncodable {
  constructor(
    readonly result: DecisionResult,
    readonly layout: DecisionLayout,
  ) {}
  get [wireSchema](): DescMessage {
    return this.layout.schema;
  }
  [toWire](): Uint8Array {
    return encodeDecision(this.result, this.layout);
  }
  get allowed(): boolean {
    return this.result.allowed;
  }
  get reason(): number {
    return toReasonPb(this.result.reason);
  }
  get deniedItem(): number | undefined {
    return this.result.allowed ? undefined : this.result.deniedItem;
  }
  get items(): MessageInitShape<typeof MeterStateSchema>[] {
    return this.result.items.map(toMeterState);
  }
  get customerId(): string {
    return this.result.customerId;
  }
  get plan(): string {
    return this.result.plan;
  }
  get policyVersion(): string {
    return this.result.policyVersion;
  }
  get reservationId(): string | undefined {
    return this.layout.reservationId === undefined ? undefined : (this.result.reservationId ?? "");
  }
  get reservationExpiresAt(): MessageInitShape<typeof TimestampSchema> | undefined {
    const at = this.result.reservationExpiresAt;
    return this.layout.reservationExpiresAt === undefined || at === undefined ? undefined : toTimestamp(at);
  }
}

/** `r` as the response of `layout` (Allow, Check, Record or Settle). */
export function decisionReply(r: DecisionResult, layout: DecisionLayout): DecisionInit {
  // A getter returning undefined reads like an absent optional field (create() skips it).
  return new DecisionReply(r, layout) as unknown as DecisionInit;
}

/** `r` as Reserve's response. */
export function reserveReply(r: DecisionResult): ReserveInit {
  return new DecisionReply(r, LAYOUTS.reserve) as unknown as ReserveInit;
}

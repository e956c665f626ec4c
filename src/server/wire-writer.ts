/**
 * A protobuf binary writer for the hand-written encoders of the hot responses (decisions,
 * WatchEvents events), writing the same bytes as protobuf-es's `toBinary` without its reflection
 * or its `BinaryWriter` (a chunk per write, fork/join copies, `finish()` concatenating them).
 *
 * The bytes go into one module-level scratch buffer and are copied out once at the end. Room for
 * the whole message is made before anything is written (`start(bound)`, from an upper bound the
 * encoder computes: three UTF-8 bytes per UTF-16 unit), so that the writes themselves need no
 * checks. Encoding is synchronous and every message starts at 0, so a throw half-way leaves
 * nothing behind.
 *
 * Field tags are looked up by name in the generated descriptors when an encoder module loads
 * (`tagOf`), checked for the type the encoder writes: a renamed field or a changed type fails at
 * start-up, a renumbered one is followed.
 */
import { ScalarType } from "@bufbuild/protobuf";
import type { DescField, DescMessage } from "@bufbuild/protobuf";
import { WireType } from "@bufbuild/protobuf/wire";
import { FeatureSet_FieldPresence, TimestampSchema } from "@bufbuild/protobuf/wkt";

/** What a field must be for an encoder to write it correctly. */
export type Expect =
  | { readonly scalar: ScalarType; readonly optional?: boolean }
  | { readonly enum: true }
  | { readonly message: DescMessage; readonly list?: boolean }
  | { readonly stringMap: true };

/**
 * The tag (`number << 3 | wire type`) of `schema`'s field `localName`, after checking that the
 * field has the expected type. Throws (at module load) when the proto no longer matches.
 */
export function tagOf(schema: DescMessage, localName: string, expect: Expect): number {
  const f: DescField | undefined = schema.fields.find((x) => x.localName === localName);
  const wrong = (what: string): Error =>
    new Error(`${schema.typeName}.${localName}: ${what}; update the encoder in src/server/ to match the proto`);
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
  } else if ("stringMap" in expect) {
    const ok = f.fieldKind === "map" && f.mapKey === ScalarType.STRING && f.mapKind === "scalar" && f.scalar === ScalarType.STRING;
    if (!ok) throw wrong("expected map<string, string>");
    wire = WireType.LengthDelimited;
  } else {
    const ok = expect.list ? f.fieldKind === "list" && f.listKind === "message" : f.fieldKind === "message";
    if (!ok || f.message?.typeName !== expect.message.typeName) throw wrong(`expected ${expect.list ? "repeated " : ""}${expect.message.typeName}`);
    wire = WireType.LengthDelimited;
  }
  return ((f.number << 3) | wire) >>> 0;
}

/** The two field kinds most tags are looked up as. */
export const STRING_FIELD = { scalar: ScalarType.STRING } as const;
export const DOUBLE_FIELD = { scalar: ScalarType.DOUBLE } as const;

const T = {
  seconds: tagOf(TimestampSchema, "seconds", { scalar: ScalarType.INT64 }),
  nanos: tagOf(TimestampSchema, "nanos", { scalar: ScalarType.INT32 }),
  secondsSize: 0,
  nanosSize: 0,
};
T.secondsSize = varintSize(T.seconds);
T.nanosSize = varintSize(T.nanos);

// Upper bounds in bytes, for an encoder's `bound`: a tag or a length is at most 5 bytes, a varint
// 10, a double 8; string contents (3 bytes per UTF-16 unit) are added per message.
export const TAG = 5;
export const VARINT = 10;
/** A string field's tag and length (its contents are counted separately). */
export const STRING = TAG + 5;
/** A nested message's tag and length. */
export const NESTED = TAG + 5;
/** A Timestamp's tag, its 1-byte length (at most 30) and both fields. */
export const TIMESTAMP = TAG + 1 + (TAG + VARINT) * 2;

let buf = Buffer.allocUnsafe(16 * 1024);
let view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
let pos = 0;

/** Begins a message of at most `bound` bytes (the scratch buffer grows by doubling and stays grown). */
export function start(bound: number): void {
  pos = 0;
  if (bound <= buf.length) return;
  let next = buf.length * 2;
  while (next < bound) next *= 2;
  buf = Buffer.allocUnsafe(next);
  view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
}

/** The message written since `start`, as a copy the caller owns. */
export function finish(): Uint8Array {
  // Buffer.allocUnsafe cuts small sizes from Node's pool (a fresh ArrayBuffer each costs more);
  // the copy is handed out as a plain Uint8Array, as BinaryWriter's was.
  const out = Buffer.allocUnsafe(pos);
  buf.copy(out, 0, 0, pos);
  return new Uint8Array(out.buffer, out.byteOffset, pos);
}

/** Bytes of `v` as a varint written by `varint()`/`int64()` (negatives take 10). */
export function varintSize(v: number): number {
  if (v < 0) return 10;
  let n = 1;
  while (v >= 128) {
    v = Math.floor(v / 128);
    n++;
  }
  return n;
}

/** A varint of `0 <= v < 2^32`: tags, lengths, non-negative enum values. */
export function varint(v: number): void {
  while (v > 0x7f) {
    buf[pos++] = (v & 0x7f) | 0x80;
    v >>>= 7;
  }
  buf[pos++] = v;
}

/**
 * A negative integer (down to -2^53) as protobuf writes int32 and int64: sign-extended to 64 bits,
 * so always 10 bytes. ToUint32 of a negative number is its low two's-complement word.
 */
function negative(v: number): void {
  let lo = v >>> 0;
  let hi = Math.floor(v / 0x1_0000_0000) >>> 0;
  for (let i = 0; i < 4; i++) {
    buf[pos++] = (lo & 0x7f) | 0x80;
    lo >>>= 7;
  }
  buf[pos++] = lo | ((hi & 0x07) << 4) | 0x80;
  hi >>>= 3;
  for (let i = 0; i < 4; i++) {
    buf[pos++] = (hi & 0x7f) | 0x80;
    hi >>>= 7;
  }
  buf[pos++] = hi;
}

export function int32(v: number): void {
  if (v >= 0) varint(v);
  else negative(v);
}

/** An int64 (or a uint64 below 2^53) from a safe integer, without a bigint. */
export function int64(v: number): void {
  if (v < 0) negative(v);
  else if (v <= 0xffff_ffff) varint(v);
  else {
    while (v > 0x7f) {
      buf[pos++] = (v % 128) | 0x80;
      v = Math.floor(v / 128);
    }
    buf[pos++] = v;
  }
}

/** Bytes already encoded (a nested message's contents, or whole fields), as they are. */
export function raw(bytes: Uint8Array): void {
  buf.set(bytes, pos);
  pos += bytes.length;
}

/** proto3 implicit presence: a bool field is written only when true. */
export function bool(tag: number, v: boolean): void {
  if (!v) return;
  varint(tag);
  buf[pos++] = 1;
}

/** An enum or int32 field, left out when 0 (implicit presence). */
export function enumField(tag: number, v: number): void {
  if (v === 0) return;
  varint(tag);
  int32(v);
}

/** An int32 field with explicit presence: written even when 0. */
export function int32Present(tag: number, v: number): void {
  varint(tag);
  int32(v);
}

/** An int64/uint64 field from a safe integer, left out when 0. */
export function int64Field(tag: number, v: number): void {
  if (v === 0) return;
  varint(tag);
  int64(v);
}

/** A string's bytes with their length prefix (no tag). */
function stringValue(v: string): void {
  const n = v.length;
  if (n < 128) {
    // Short ASCII strings (the usual ids and names) are copied in a JS loop, which beats a call
    // into `buf.write` several times over; anything else is written by Buffer, whose unpaired
    // surrogates become U+FFFD as with protobuf-es's TextEncoder.
    const at = pos + 1;
    let i = 0;
    for (; i < n; i++) {
      const c = v.charCodeAt(i);
      if (c > 0x7f) break;
      buf[at + i] = c;
    }
    if (i === n) {
      buf[pos] = n;
      pos = at + n;
      return;
    }
    if (n * 3 < 128) {
      // At most 3 bytes per unit, so the length fits the one byte left for it.
      const bytes = buf.write(v, at, "utf8");
      buf[pos] = bytes;
      pos = at + bytes;
      return;
    }
  }
  varint(Buffer.byteLength(v, "utf8"));
  pos += buf.write(v, pos, "utf8");
}

/** A string field, left out when empty (implicit presence). */
export function string(tag: number, v: string): void {
  if (v.length === 0) return;
  varint(tag);
  stringValue(v);
}

/**
 * A `map<string, string>` entry as protobuf-es writes it: key (field 1) and value (field 2) both
 * written, even when empty.
 */
export function stringMapEntry(tag: number, key: string, value: string): void {
  varint(tag);
  const at = begin();
  buf[pos++] = 0x0a;
  stringValue(key);
  buf[pos++] = 0x12;
  stringValue(value);
  end(at);
}

/** A double field with implicit presence: written unless it is +0 (protobuf-es keeps -0). */
export function double(tag: number, v: number): void {
  if (v === 0 && 1 / v > 0) return;
  doublePresent(tag, v);
}

/** A double field with explicit presence: written even when 0. */
export function doublePresent(tag: number, v: number): void {
  varint(tag);
  view.setFloat64(pos, v, true);
  pos += 8;
}

/**
 * A Timestamp as `timestampFromMs` makes it (floor seconds, non-negative nanos). Its length is
 * known up front, so it is written in place.
 */
export function timestamp(tag: number, ms: number): void {
  const seconds = Math.floor(ms / 1000);
  const nanos = (ms - seconds * 1000) * 1_000_000;
  const size = (seconds !== 0 ? T.secondsSize + varintSize(seconds) : 0) + (nanos !== 0 ? T.nanosSize + varintSize(nanos) : 0);
  varint(tag);
  varint(size);
  if (seconds !== 0) {
    varint(T.seconds);
    int64(seconds);
  }
  if (nanos !== 0) {
    varint(T.nanos);
    int32(nanos);
  }
}

/**
 * Begins a nested message whose tag was just written: one byte is left for its length, which is
 * nearly always enough; `end` moves a longer message up to make room (the bound's `NESTED` allows
 * for that). Returns where the contents start.
 */
export function begin(): number {
  return ++pos;
}

/** Ends the nested message begun at `at`, writing its length. */
export function end(at: number): void {
  const size = pos - at;
  if (size < 128) {
    buf[at - 1] = size;
    return;
  }
  const extra = varintSize(size) - 1;
  buf.copyWithin(at + extra, at, pos);
  pos = at - 1;
  varint(size);
  pos += size;
}

/** A nested message field's tag, then `begin()`. */
export function message(tag: number): number {
  varint(tag);
  return begin();
}

/**
 * A response that serialises itself, so the grpc-js bridge can skip protobuf-es's reflective
 * `create()` + `toBinary()` on the hot path. Any other transport (connect-node) still sees a plain
 * message init shape: the object reads like one, so `create()` copies it field by field as usual.
 */
import type { DescMessage } from "@bufbuild/protobuf";

/** The schema the object encodes as (the bridge only uses the shortcut when it is the method's output). */
export const wireSchema: unique symbol = Symbol("limitr.wireSchema");
/** Returns the binary encoding, identical to `toBinary(schema, create(schema, this))`. */
export const toWire: unique symbol = Symbol("limitr.toWire");

/** A message init shape that can encode itself (see the module comment). */
export interface WireEncodable {
  readonly [wireSchema]: DescMessage;
  [toWire](): Uint8Array;
}

/** Whether `value` encodes itself as `schema`. */
export function encodesAs(value: unknown, schema: DescMessage): value is WireEncodable {
  return typeof value === "object" && value !== null && (value as Partial<WireEncodable>)[wireSchema] === schema;
}

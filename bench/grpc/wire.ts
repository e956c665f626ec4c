/**
 * Request bodies as they travel on the wire: protobuf bytes built with protobuf-es from src/gen,
 * framed for gRPC (1 byte "not compressed" + 4 bytes big-endian length), the form h2load sends.
 */
import { create, toBinary } from "@bufbuild/protobuf";
import type { DescMessage, MessageInitShape } from "@bufbuild/protobuf";
import { AllowRequestSchema, CheckRequestSchema, RecordRequestSchema } from "../../src/gen/limitr/v1/decision_pb.js";

export const DECISION_SERVICE = "/limitr.v1.DecisionService";

/** Protobuf bytes of a message. */
export function encode<D extends DescMessage>(schema: D, init: MessageInitShape<D>): Buffer {
  return Buffer.from(toBinary(schema, create(schema, init)));
}

/** A gRPC length-prefixed frame around protobuf bytes. */
export function grpcFrame(message: Uint8Array): Buffer {
  const out = Buffer.alloc(5 + message.length);
  out.writeUInt8(0, 0);
  out.writeUInt32BE(message.length, 1);
  out.set(message, 5);
  return out;
}

export type Rpc = "Allow" | "Check" | "Record";

/** One item of usage per entitlement name, `amount` each. */
export interface Usage {
  readonly entitlement: string;
  readonly amount: number;
}

export const SINGLE: readonly Usage[] = [{ entitlement: "requests", amount: 1 }];
export const TRIPLE: readonly Usage[] = [
  { entitlement: "input_tokens", amount: 700 },
  { entitlement: "output_tokens", amount: 300 },
  { entitlement: "requests", amount: 1 },
];

/** The protobuf bytes of an Allow/Check/Record request for `customerId` (with `idempotencyKey`, if given). */
export function decisionRequest(rpc: Rpc, customerId: string, usage: readonly Usage[], idempotencyKey = ""): Buffer {
  const init = {
    customerId,
    items: usage.map((u) => ({ entitlement: u.entitlement, amount: u.amount })),
    attributes: { model: "gpt-4o" },
    idempotencyKey,
  };
  switch (rpc) {
    case "Allow":
      return encode(AllowRequestSchema, init);
    case "Check":
      return encode(CheckRequestSchema, init);
    case "Record":
      return encode(RecordRequestSchema, init);
  }
}

/**
 * The call observer, called directly: every unary call is reported once with its outcome, whether
 * the impl resolved, rejected or threw synchronously, and the caller sees the same result; a
 * faulty observer never changes the call.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { Reason } from "../../src/gen/limitr/v1/common_pb.js";
import { DecisionService } from "../../src/gen/limitr/v1/decision_pb.js";
import { observeServiceImpl } from "../../src/server/observe-service-impl.js";
import type { CallEnd } from "../../src/server/server-deps.js";

const ctx = { protocolName: "grpc" } as HandlerContext;
type Impl = Record<string, (req: unknown, ctx: HandlerContext) => unknown>;

function observed(impl: Impl, callEnded: (c: CallEnd) => void): Impl {
  return observeServiceImpl(DecisionService, impl as unknown as ServiceImpl<typeof DecisionService>, { callEnded }) as unknown as Impl;
}

describe("observeServiceImpl", () => {
  it("reports a decision, an error from the promise and a synchronous throw, each once", async () => {
    const ends: CallEnd[] = [];
    const denied = new ConnectError("no", Code.FailedPrecondition);
    const o = observed(
      {
        allow: () => Promise.resolve({ allowed: false, reason: Reason.HARD_LIMIT }),
        check: () => Promise.reject(denied),
        record: () => {
          throw denied;
        },
      },
      (c) => ends.push(c),
    );
    expect(await (o["allow"]?.({}, ctx) as Promise<unknown>)).toEqual({ allowed: false, reason: Reason.HARD_LIMIT });
    for (const name of ["check", "record"]) {
      const call = o[name]?.({}, ctx) as Promise<unknown>;
      expect(call).toBeInstanceOf(Promise);
      await expect(call).rejects.toBe(denied);
    }
    expect(ends.map((e) => [e.rpc, e.outcome, e.reason, e.code, e.protocol])).toEqual([
      ["Allow", "denied", "HARD_LIMIT", "ok", "grpc"],
      ["Check", "error", undefined, "failed_precondition", "grpc"],
      ["Record", "error", undefined, "failed_precondition", "grpc"],
    ]);
    expect(ends.every((e) => e.seconds >= 0)).toBe(true);
  });

  it("a throwing observer changes nothing for the caller", async () => {
    const o = observed({ getMeters: () => Promise.resolve({ meters: [] }) }, () => {
      throw new Error("observer bug");
    });
    expect(await (o["getMeters"]?.({}, ctx) as Promise<unknown>)).toEqual({ meters: [] });
  });
});

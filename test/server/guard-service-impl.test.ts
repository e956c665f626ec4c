/**
 * The error-mapping wrapper, called directly: whatever an impl throws (synchronously, from its
 * promise, or from its stream at any point) comes out as a ConnectError, and a stream that is
 * ended early ends the impl's stream too. The transport tests cover the same through a server.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { LimitrError } from "../../src/errors/index.js";
import { DecisionService } from "../../src/gen/limitr/v1/decision_pb.js";
import { guardServiceImpl } from "../../src/server/guard-service-impl.js";

const logger = { info: () => {}, warn: () => {}, error: () => {} };
const ctx = {} as HandlerContext;
type Impl = Record<string, (req: unknown, ctx: HandlerContext) => unknown>;

function guarded(impl: Impl): Impl {
  return guardServiceImpl(DecisionService, impl as unknown as ServiceImpl<typeof DecisionService>, logger) as unknown as Impl;
}

async function drain(items: AsyncIterable<unknown>): Promise<unknown[]> {
  const out: unknown[] = [];
  for await (const x of items) out.push(x);
  return out;
}

async function rejection(p: Promise<unknown>): Promise<ConnectError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(ConnectError);
    return e as ConnectError;
  }
  return expect.fail("expected a rejection");
}

describe("guardServiceImpl", () => {
  it("maps a unary impl's rejection and its synchronous throw alike", async () => {
    const bad = new LimitrError("INVALID_ARGUMENT", "no", { field: "customer_id" });
    const g = guarded({
      allow: () => Promise.reject(bad),
      check: () => {
        throw bad;
      },
      record: () => Promise.resolve({ ok: 1 }),
    });
    for (const name of ["allow", "check"]) {
      const call = g[name]?.({}, ctx) as Promise<unknown>;
      expect(call).toBeInstanceOf(Promise);
      const err = await rejection(call);
      expect([err.code, err.rawMessage]).toEqual([Code.InvalidArgument, "customer_id: no"]);
    }
    expect(await (g["record"]?.({}, ctx) as Promise<unknown>)).toEqual({ ok: 1 });
  });

  it("maps what a stream throws after some items, and what an impl throws before its stream exists", async () => {
    const g = guarded({
      watchEvents: async function* () {
        yield 1;
        yield 2;
        throw new LimitrError("UNAVAILABLE", "store closed");
      },
    });
    const items: unknown[] = [];
    const err = await rejection(
      (async () => {
        for await (const x of g["watchEvents"]?.({}, ctx) as AsyncIterable<unknown>) items.push(x);
      })(),
    );
    expect(items).toEqual([1, 2]);
    expect([err.code, err.rawMessage]).toEqual([Code.Unavailable, "store closed"]);

    const cannotStart = guarded({
      watchEvents: () => {
        throw new Error("secret detail");
      },
    });
    const stream = cannotStart["watchEvents"]?.({}, ctx) as AsyncIterable<unknown>;
    const it = stream[Symbol.asyncIterator]();
    const first = await rejection(it.next());
    expect([first.code, first.rawMessage]).toEqual([Code.Internal, "internal error"]);
    expect(await it.next()).toEqual({ done: true, value: undefined });
  });

  it("ending the stream early ends the impl's stream (its finally runs)", async () => {
    let closed = false;
    const g = guarded({
      watchEvents: async function* () {
        try {
          for (let i = 0; ; i++) yield i;
        } finally {
          closed = true;
        }
      },
    });
    const out: unknown[] = [];
    for await (const x of g["watchEvents"]?.({}, ctx) as AsyncIterable<unknown>) {
      out.push(x);
      if (out.length === 3) break;
    }
    expect(out).toEqual([0, 1, 2]);
    expect(closed).toBe(true);
    expect(await drain(guarded({ watchEvents: async function* () {} })["watchEvents"]?.({}, ctx) as AsyncIterable<unknown>)).toEqual([]);
  });
});

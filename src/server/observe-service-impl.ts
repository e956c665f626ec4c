/**
 * Wraps a guarded `ServiceImpl` so a `CallObserver` learns how each unary (and client-streaming)
 * call ended and how long it took. Both transports serve the same wrapped object, so a call is
 * measured once, at the handler boundary, whichever port it came through. Streaming responses
 * (WatchEvents, ExportState) pass through untouched: their length is the client's choice.
 */
import type { DescService } from "@bufbuild/protobuf";
import { Code, ConnectError, createServiceImplSpec } from "@connectrpc/connect";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import { codeToString } from "@connectrpc/connect/protocol-connect";
import { Reason } from "../gen/limitr/v1/common_pb.js";
import type { CallEnd, CallObserver } from "./server-deps.js";

/** allowed/denied + reason when the response is a decision; ok otherwise. */
function decisionOf(res: unknown): Pick<CallEnd, "outcome" | "reason"> {
  if (typeof res === "object" && res !== null && "allowed" in res && "reason" in res) {
    const r = res as { allowed: unknown; reason: unknown };
    const reason = typeof r.reason === "number" ? (Reason[r.reason] ?? "UNSPECIFIED") : "UNSPECIFIED";
    return { outcome: r.allowed === true ? "allowed" : "denied", reason };
  }
  return { outcome: "ok", reason: undefined };
}

/**
 * A call refused before its handler ran (a request that failed to decode or is over the size
 * limit): answered, so counted like any other, with the code it was answered with.
 */
export function refusedCall(rpc: string, protocol: string, code: Code): CallEnd {
  return { rpc, protocol, seconds: 0, outcome: "error", reason: undefined, code: codeToString(code) };
}

/** Returns `impl` with each unary/client-streaming method reported to `observer`. */
export function observeServiceImpl<S extends DescService>(service: S, impl: ServiceImpl<S>, observer: CallObserver): ServiceImpl<S> {
  const spec = createServiceImplSpec(service, impl);
  const observed: Record<string, unknown> = {};
  for (const [name, m] of Object.entries(spec.methods)) {
    const rpc = m.method.name;
    if (m.kind !== "unary" && m.kind !== "client_streaming") {
      observed[name] = m.impl;
      continue;
    }
    const f = m.impl as (req: unknown, ctx: HandlerContext) => unknown;
    const end = (ctx: HandlerContext, started: number, outcome: CallEnd["outcome"], reason: string | undefined, code: string): void => {
      try {
        observer.callEnded({ rpc, protocol: ctx.protocolName, seconds: (performance.now() - started) / 1000, outcome, reason, code });
      } catch {
        // An observer is diagnostics only; a bug in it must never fail the call it watched.
      }
    };
    // Every call passes here: handlers on the impl's promise, not an async wrapper around it.
    observed[name] = (req: unknown, ctx: HandlerContext): Promise<unknown> => {
      const started = performance.now();
      let pending: unknown;
      try {
        pending = f(req, ctx);
      } catch (e) {
        pending = Promise.reject(e);
      }
      return Promise.resolve(pending).then(
        (res) => {
          const d = decisionOf(res);
          end(ctx, started, d.outcome, d.reason, "ok");
          return res;
        },
        (e: unknown) => {
          // Guarded impls only throw ConnectErrors; anything else would be mapped to internal.
          end(ctx, started, "error", undefined, codeToString(e instanceof ConnectError ? e.code : Code.Internal));
          throw e;
        },
      );
    };
  }
  // The keys and call shapes are those of `impl`, method by method; only the type is lost above.
  return observed as ServiceImpl<S>;
}

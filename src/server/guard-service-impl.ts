/**
 * Wraps a `ServiceImpl` so that whatever its methods throw reaches the transport as a
 * `ConnectError` made by `toConnectError`. Both transports then only relay the verdict: the
 * grpc-js adapter as a gRPC status, connect-node as a Connect error (it would otherwise expose
 * a foreign error's message).
 */
import type { DescService } from "@bufbuild/protobuf";
import { createServiceImplSpec } from "@connectrpc/connect";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import type { ServerLogger } from "./server-deps.js";
import { toConnectError } from "./to-connect-error.js";

/** Returns `impl` with every method's errors mapped through `toConnectError`. */
export function guardServiceImpl<S extends DescService>(service: S, impl: ServiceImpl<S>, logger: ServerLogger): ServiceImpl<S> {
  const spec = createServiceImplSpec(service, impl);
  const guarded: Record<string, unknown> = {};
  for (const [name, m] of Object.entries(spec.methods)) {
    const rpc = `${service.typeName}/${m.method.name}`;
    const fail = (e: unknown): never => {
      throw toConnectError(e, logger, rpc);
    };
    switch (m.kind) {
      case "unary":
      case "client_streaming": {
        const f = m.impl as (req: unknown, ctx: HandlerContext) => unknown;
        guarded[name] = async (req: unknown, ctx: HandlerContext) => {
          try {
            return await f(req, ctx);
          } catch (e) {
            return fail(e);
          }
        };
        break;
      }
      case "server_streaming":
      case "bidi_streaming": {
        const f = m.impl as (req: unknown, ctx: HandlerContext) => AsyncIterable<unknown>;
        guarded[name] = async function* (req: unknown, ctx: HandlerContext) {
          try {
            yield* f(req, ctx);
          } catch (e) {
            fail(e);
          }
        };
        break;
      }
    }
  }
  // The keys and call shapes are those of `impl`, method by method; only the type is lost above.
  return guarded as ServiceImpl<S>;
}

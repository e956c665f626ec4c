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
        // Every call passes here: one rejection handler on the impl's promise, not an async
        // wrapper around it (a promise and an await fewer per call).
        guarded[name] = (req: unknown, ctx: HandlerContext): Promise<unknown> => {
          let res: unknown;
          try {
            res = f(req, ctx);
          } catch (e) {
            return Promise.reject(toConnectError(e, logger, rpc));
          }
          return Promise.resolve(res).then(undefined, fail);
        };
        break;
      }
      case "server_streaming":
      case "bidi_streaming": {
        const f = m.impl as (req: unknown, ctx: HandlerContext) => AsyncIterable<unknown>;
        guarded[name] = (req: unknown, ctx: HandlerContext) => guardIterable(() => f(req, ctx), fail);
        break;
      }
    }
  }
  // The keys and call shapes are those of `impl`, method by method; only the type is lost above.
  return guarded as ServiceImpl<S>;
}

/**
 * `open()`'s items, with whatever its iterator throws passed through `fail`. An iterator object
 * rather than an async generator around it: each streamed item (every WatchEvents event, for
 * every subscriber) would otherwise pay one more generator resumption. `return` is forwarded, so
 * a stream the client cancelled still ends (and unsubscribes) the feed underneath.
 */
function guardIterable<T>(open: () => AsyncIterable<T>, fail: (e: unknown) => never): AsyncIterable<T> {
  return {
    [Symbol.asyncIterator](): AsyncIterator<T> {
      let it: AsyncIterator<T>;
      try {
        it = open()[Symbol.asyncIterator]();
      } catch (e) {
        let failed = false;
        return {
          next: (): Promise<IteratorResult<T>> => {
            if (failed) return Promise.resolve({ done: true, value: undefined });
            failed = true;
            return Promise.reject(e).then(undefined, fail);
          },
        };
      }
      return {
        next: (...args: [] | [unknown]) => it.next(...args).then(undefined, fail),
        return: (value?: unknown) =>
          it.return ? it.return(value).then(undefined, fail) : Promise.resolve({ done: true, value: value as T }),
        throw: (err?: unknown) => (it.throw ? it.throw(err).then(undefined, fail) : Promise.reject(err).then(undefined, fail)),
      };
    },
  };
}

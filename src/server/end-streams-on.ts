/**
 * A grpc-js server as seen by a library's `addToServer` (grpc-health-check's Health, @grpc/reflection):
 * the calls of its response-streaming methods are ended, with status OK, once `signal` aborts.
 *
 * A graceful shutdown waits for every HTTP/2 stream to close, answers included: an Allow that was
 * decided and counted is only answered once its response has left. Health `Watch` and reflection
 * streams never end by themselves, so without this the wait would last the whole grace period
 * whenever one is open, and cutting the wait short instead (as a fixed pause once our own calls
 * were handed over used to) cancels answers still queued for a client that reads slowly.
 */
import type * as grpc from "@grpc/grpc-js";

interface EndableCall {
  end(): void;
  once(event: string, listener: () => void): unknown;
}

type Handler = (call: EndableCall, ...rest: unknown[]) => unknown;

/** What `addToServer` of those libraries uses of a server. */
export type ServiceAdder = Pick<grpc.Server, "addService">;

export function endStreamsOn(server: ServiceAdder, signal: AbortSignal): ServiceAdder {
  return {
    addService(service, implementation) {
      const streaming = new Set<string>();
      for (const [key, method] of Object.entries(service)) {
        if (!method.responseStream) continue;
        streaming.add(key);
        if (method.originalName !== undefined) streaming.add(method.originalName);
      }
      const wrapped: grpc.UntypedServiceImplementation = {};
      for (const [name, handler] of Object.entries(implementation)) {
        wrapped[name] = streaming.has(name) ? (endedOn(handler as unknown as Handler, signal) as unknown as grpc.UntypedHandleCall) : handler;
      }
      server.addService(service, wrapped);
    },
  };
}

function endedOn(handler: Handler, signal: AbortSignal): Handler {
  return (call, ...rest) => {
    const result = handler(call, ...rest);
    if (signal.aborted) {
      call.end();
      return result;
    }
    const end = (): void => call.end();
    signal.addEventListener("abort", end, { once: true });
    const forget = (): void => signal.removeEventListener("abort", end);
    call.once("cancelled", forget);
    call.once("finish", forget);
    return result;
  };
}

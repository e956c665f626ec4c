/**
 * A generic bridge from a connect-es `ServiceImpl` to a `@grpc/grpc-js` server: the same handler
 * objects serve grpc-js (here) and connect-node (the HTTP port, issue 7). Messages are
 * (de)serialized with protobuf-es, and every failure becomes a status through `toGrpcStatus`.
 */
import * as grpc from "@grpc/grpc-js";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import type { DescMessage, DescMethod, DescService, MessageShape } from "@bufbuild/protobuf";
import { createHandlerContext, createServiceImplSpec } from "@connectrpc/connect";
import type { HandlerContext, MethodImplSpec, ServiceImpl } from "@connectrpc/connect";
import { invalidArgument, LimitrError } from "../errors/index.js";
import { decisionRequestDecoder } from "./decode-decision.js";
import type { RequestDecoder } from "./decode-decision.js";
import type { ServerLogger } from "./server-deps.js";
import { toGrpcStatus } from "./to-connect-error.js";
import { createStreamWriter } from "./stream-writer.js";
import type { StreamWriter } from "./stream-writer.js";
import { encodesAs, toWire } from "./wire-encodable.js";

/** Options of `registerGrpcService`. */
export interface RegisterOptions {
  /** Largest accepted request message; larger is INVALID_ARGUMENT naming size and limit. */
  readonly maxMessageBytes: number;
  readonly logger: ServerLogger;
  /** Aborts every call's `HandlerContext.signal` (used to end long streams at shutdown). */
  readonly shutdownSignal?: AbortSignal;
  /** Told of each unary call answered without reaching its handler (the request did not decode, or came too late). */
  readonly onRefused?: (rpc: string, code: number) => void;
}

/**
 * A request as the deserializer hands it over. Deserialization never throws: grpc-js would turn
 * that into INTERNAL, while an oversized or malformed request is the caller's INVALID_ARGUMENT.
 */
type Decoded = { readonly ok: true; readonly message: unknown } | { readonly ok: false; readonly error: LimitrError };

/** How big a message grpc-js itself lets through, so that our own, clearer check sees it first. */
export function transportReceiveLimit(maxMessageBytes: number): number {
  return Math.max(maxMessageBytes * 4, maxMessageBytes + 1024 * 1024);
}

/** Registers every method of `service`, implemented by `impl`, on a grpc-js `server`. */
export function registerGrpcService<S extends DescService>(
  server: grpc.Server,
  service: S,
  impl: ServiceImpl<S>,
  options: RegisterOptions,
): void {
  const spec = createServiceImplSpec(service, impl);
  const definition: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
  const handlers: grpc.UntypedServiceImplementation = {};
  let reported = false;
  const unsupported = (reason: string): void => {
    if (reported) return;
    reported = true;
    options.logger.warn("cannot write a turn's stream responses together; writing them one by one", { service: service.typeName, reason });
  };
  for (const [name, methodSpec] of Object.entries(spec.methods)) {
    const method = methodSpec.method;
    const fast = decisionRequestDecoder(method.input);
    definition[name] = {
      path: `/${service.typeName}/${method.name}`,
      requestStream: method.methodKind === "client_streaming" || method.methodKind === "bidi_streaming",
      responseStream: method.methodKind === "server_streaming" || method.methodKind === "bidi_streaming",
      requestSerialize: (m: unknown) => Buffer.from(toBinary(method.input, m as MessageShape<DescMessage>)),
      requestDeserialize: (buf: Buffer): Decoded => decode(method.input, buf, options.maxMessageBytes, fast),
      responseSerialize: serializerOf(method.output),
      responseDeserialize: (buf: Buffer) => fromBinary(method.output, buf),
      originalName: method.localName,
    };
    handlers[name] = makeHandler(service, methodSpec, options, unsupported);
  }
  server.addService(definition, handlers);
}

/** How a method's responses are encoded, by grpc-js (unary) or by the stream writer. */
function serializerOf(output: DescMessage): (m: unknown) => Buffer {
  return (m) => asBuffer(encodesAs(m, output) ? m[toWire]() : toBinary(output, m as MessageShape<DescMessage>));
}

/** A Buffer view of `bytes` (grpc-js copies it into its frame; no need to copy it first). */
function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** The message to hand to grpc-js: a self-encoding response as is, anything else as a message. */
function toOutput(output: DescMessage, res: unknown): unknown {
  return encodesAs(res, output) ? res : create(output, res as never);
}

/** The one answer to an oversized request, on every port (SPEC §6: INVALID_ARGUMENT naming size and limit). */
export function oversizedRequest(bytes: number, max: number): LimitrError {
  return new LimitrError("INVALID_ARGUMENT", `request message is ${bytes} bytes, over the limit of ${max} bytes`);
}

/** The one answer to a request message that does not decode, on every port (SPEC §6: the caller's INVALID_ARGUMENT). */
export function undecodableRequest(schema: DescMessage, cause: unknown): LimitrError {
  return invalidArgument("request", `not a valid ${schema.typeName}: ${cause instanceof Error ? cause.message : String(cause)}`);
}

/** `fast`, when given, answers the common shape of a request and leaves the rest to `fromBinary`. */
function decode(schema: DescMessage, buf: Buffer, max: number, fast?: RequestDecoder<DescMessage>): Decoded {
  if (buf.length > max) return { ok: false, error: oversizedRequest(buf.length, max) };
  try {
    return { ok: true, message: fast?.(buf) ?? fromBinary(schema, buf) };
  } catch (e) {
    return { ok: false, error: undecodableRequest(schema, e) };
  }
}

/** The call surface the handlers use, common to every grpc-js call kind. */
interface AnyCall {
  readonly metadata: grpc.Metadata;
  getDeadline(): grpc.Deadline;
  on(event: "cancelled", listener: () => void): unknown;
}

interface CancellableCall extends AnyCall {
  readonly cancelled: boolean;
}

function contextFor(service: DescService, method: DescMethod, call: CancellableCall, options: RegisterOptions) {
  const cancelled = new AbortController();
  const cancel = (): void => cancelled.abort(new LimitrError("CANCELLED", "call cancelled by the client"));
  if (call.cancelled) cancel();
  else call.on("cancelled", cancel);
  const deadline = call.getDeadline();
  const deadlineMs = deadline instanceof Date ? deadline.getTime() : deadline;
  const headers = new Headers();
  for (const [key, value] of Object.entries(call.metadata.getMap())) {
    if (typeof value === "string") headers.append(key, value);
  }
  const ctx: HandlerContext = createHandlerContext({
    service,
    method,
    protocolName: "grpc",
    requestMethod: "POST",
    url: `/${service.typeName}/${method.name}`,
    requestSignal: cancelled.signal,
    requestHeader: headers,
    ...(Number.isFinite(deadlineMs) ? { timeoutMs: Math.max(0, deadlineMs - Date.now()) } : {}),
    ...(options.shutdownSignal ? { shutdownSignal: options.shutdownSignal } : {}),
  });
  return ctx;
}

/**
 * The `HandlerContext` of a unary call, built only when the handler first reads a part of it
 * other than the constants. Decision RPCs never do; building it eagerly (an AbortController, a
 * Headers copy of the metadata, connect's deadline and linked signals, a "cancelled" listener that
 * grpc-js fires even after a call completed normally, making a LimitrError with its stack trace
 * each time) was about 15% of the sidecar's CPU per Allow under load (bench --profile).
 */
class LazyContext implements HandlerContext {
  readonly protocolName = "grpc";
  readonly requestMethod = "POST";
  #real: HandlerContext | undefined;
  readonly #call: CancellableCall;
  readonly #options: RegisterOptions;

  constructor(
    readonly service: DescService,
    readonly method: DescMethod,
    call: CancellableCall,
    options: RegisterOptions,
  ) {
    this.#call = call;
    this.#options = options;
  }

  get #ctx(): HandlerContext {
    return (this.#real ??= contextFor(this.service, this.method, this.#call, this.#options));
  }
  get url(): string {
    return `/${this.service.typeName}/${this.method.name}`;
  }
  get signal(): AbortSignal {
    return this.#ctx.signal;
  }
  get timeoutMs(): () => number | undefined {
    return this.#ctx.timeoutMs;
  }
  get requestHeader(): Headers {
    return this.#ctx.requestHeader;
  }
  get responseHeader(): Headers {
    return this.#ctx.responseHeader;
  }
  get responseTrailer(): Headers {
    return this.#ctx.responseTrailer;
  }
  get values(): HandlerContext["values"] {
    return this.#ctx.values;
  }
}

function makeHandler(
  service: DescService,
  spec: MethodImplSpec,
  options: RegisterOptions,
  unsupported: (reason: string) => void,
): grpc.UntypedHandleCall {
  const rpc = `${service.typeName}/${spec.method.name}`;
  const status = (err: unknown) => toGrpcStatus(err, options.logger, rpc);
  switch (spec.kind) {
    case "unary": {
      const impl = spec.impl as (req: unknown, ctx: HandlerContext) => unknown;
      const output = spec.method.output;
      // No async wrapper and one settle callback per call: the handler's promise is settled
      // straight into grpc-js's callback (fewer promises, closures and microtask hops).
      return (call: grpc.ServerUnaryCall<Decoded, unknown>, callback: grpc.sendUnaryData<unknown>) => {
        const req = call.request;
        if (!req.ok) {
          const refused = status(req.error);
          options.onRefused?.(spec.method.name, refused.code);
          return callback(refused);
        }
        const late = pastDeadline(call);
        if (late !== undefined) {
          options.onRefused?.(spec.method.name, late.code);
          return callback(late);
        }
        let pending: unknown;
        try {
          pending = impl(req.message, new LazyContext(service, spec.method, call, options));
        } catch (err) {
          return callback(status(err));
        }
        Promise.resolve(pending).then(
          (res) => {
            callback(null, toOutput(output, res));
          },
          (err: unknown) => {
            callback(status(err));
          },
        );
      };
    }
    case "server_streaming": {
      const serialize = serializerOf(spec.method.output);
      return (call: grpc.ServerWritableStream<Decoded, unknown>) => {
        const req = call.request;
        if (!req.ok) {
          call.emit("error", status(req.error));
          return;
        }
        const ctx = contextFor(service, spec.method, call, options);
        // grpc-js would send the response headers with the first message, and a filtered
        // WatchEvents may have none for hours: a client or proxy waiting on headers would time the
        // call out. Sent now, they cost the stream the one HEADERS frame it had to send anyway.
        call.sendMetadata(new grpc.Metadata());
        const writer = createStreamWriter(call, serialize, unsupported);
        writeAll(call, spec.impl(req.message as never, ctx), spec.method.output, writer)
          .then(
            () => call.end(),
            (err: unknown) => {
              if (!call.cancelled) call.emit("error", status(err));
            },
          );
      };
    }
    case "client_streaming":
      return (call: grpc.ServerReadableStream<Decoded, unknown>, callback: grpc.sendUnaryData<unknown>) => {
        const ctx = contextFor(service, spec.method, call, options);
        run(() => spec.impl(readAll(call), ctx)).then(
          (res) => {
            callback(null, toOutput(spec.method.output, res));
          },
          (err: unknown) => {
            callback(status(err));
          },
        );
      };
    case "bidi_streaming":
      // No bidi RPC in limitr.v1; refuse rather than half-implement it.
      return (call: grpc.ServerDuplexStream<Decoded, unknown>) => {
        call.emit("error", { code: grpc.status.UNIMPLEMENTED, details: "bidi streaming is not supported" });
      };
  }
}

/**
 * DEADLINE_EXCEEDED for a unary call whose deadline has passed before its handler runs (a busy
 * event loop got to it late): the client has failed it or is about to, and deciding it would count
 * usage the client can only see as a failure. It narrows the window, no more: a call whose
 * deadline passes while the engine commits it still fails at the client after being counted,
 * which is why clients retry such failures with the same idempotency key. One clock read for a
 * call with a deadline, nothing allocated unless it is late.
 */
function pastDeadline(call: AnyCall): { code: number; details: string } | undefined {
  const deadline = call.getDeadline();
  const ms = typeof deadline === "number" ? deadline : deadline.getTime();
  if (ms === Infinity || ms > Date.now()) return undefined;
  return { code: grpc.status.DEADLINE_EXCEEDED, details: "deadline exceeded before the call was decided" };
}

/** Runs `f`, turning a synchronous throw into a rejection. */
async function run<T>(f: () => T | Promise<T>): Promise<T> {
  return await f();
}

/**
 * Writes every response, waiting for the transport to drain so a slow reader exerts backpressure.
 * What is queued is written before the call ends, with its status or with an error.
 */
async function writeAll(
  call: grpc.ServerWritableStream<Decoded, unknown>,
  responses: AsyncIterable<unknown>,
  output: DescMessage,
  writer: StreamWriter,
): Promise<void> {
  try {
    for await (const init of responses) {
      if (call.cancelled) return;
      if (!writer.write(toOutput(output, init))) await writer.drained();
    }
  } finally {
    writer.flush();
  }
}

/** The requests of a client stream; a request that failed to decode ends it with its error. */
async function* readAll(call: grpc.ServerReadableStream<Decoded, unknown>): AsyncGenerator<never> {
  for await (const item of call as AsyncIterable<Decoded>) {
    if (!item.ok) throw item.error;
    yield item.message as never;
  }
}

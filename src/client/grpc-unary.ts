/**
 * One gRPC unary call over an HTTP/2 connection, written against `node:http2` directly.
 *
 * Why not connect-es's transport: its unary call runs through async-iterable pipelines, a deadline
 * controller and a linked one (a `DOMException` and a `ConnectError` built and thrown away per
 * call) and web `Headers`. Profiled under 64 calls in flight, that made the bundled client spend
 * ~0.5 ms of the app's CPU per call, several times what the sidecar spends deciding it
 * (docs/clients.md). This does only what a gRPC unary call needs: one length-prefixed request, one
 * length-prefixed response, a status from the trailers. The connection itself (connecting, GOAWAY,
 * reconnecting, closing when idle) stays with connect-node's `Http2SessionManager`, shared with the
 * streaming calls, which still use connect's transport.
 *
 * Failures are `ConnectError`s with the Node error they came from as `cause`. A connection that
 * could not be opened or that died under the call (refused, no such unix socket, reset, a stream
 * refused or reset with CANCEL by a server going away) is UNAVAILABLE, as gRPC's own clients
 * report it, because that is the code apps retry: connect-node's codes for these (INTERNAL for a
 * missing unix socket, ABORTED for a reset socket, CANCELLED for a stream a dying connection
 * reset) read as a sidecar bug or as the app's own cancellation. CANCELLED is left for the
 * caller's signal.
 */
import { constants, type ClientHttp2Stream, type IncomingHttpHeaders } from "node:http2";
import { create, fromBinary, toBinary, type DescMessage, type DescMethodUnary, type MessageInitShape, type MessageShape } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Http2SessionManager } from "@connectrpc/connect-node";
import { fromNodeError } from "./connection-failure.js";

export interface UnaryCallOptions {
  /** Deadline of this call; 0 or less fails at once; `Infinity` (or anything past ~24.8 days, `setTimeout`'s limit) means none. */
  readonly timeoutMs: number;
  /** Aborting it cancels the call (CANCELLED) and resets its stream. */
  readonly signal: AbortSignal;
}

export type UnaryCaller = <I extends DescMessage, O extends DescMessage>(
  method: DescMethodUnary<I, O>,
  input: MessageInitShape<I>,
  options: UnaryCallOptions,
) => Promise<MessageShape<O>>;

/** Longest delay `setTimeout` takes; beyond it Node fires after 1 ms instead. */
const MAX_TIMER_MS = 2_147_483_647;

/** Calls unary methods on the connection `session` manages. */
export function createUnaryCaller(session: Http2SessionManager): UnaryCaller {
  const paths = new Map<DescMethodUnary, string>();
  return (method, input, options) => {
    let path = paths.get(method as DescMethodUnary);
    if (path === undefined) paths.set(method as DescMethodUnary, (path = `/${method.parent.typeName}/${method.name}`));
    return new Promise((resolve, reject) => {
      new UnaryCall(session, method, frame(toBinary(method.input, create(method.input, input))), resolve, reject).start(path, options);
    });
  };
}

/** The state of one call: one object, which the shared listeners below find on its stream. */
class UnaryCall<O extends DescMessage> {
  private stream: ClientHttp2Stream | undefined;
  private timer: NodeJS.Timeout | undefined;
  private signal: AbortSignal | undefined;
  private done = false;
  private headers: IncomingHttpHeaders | undefined;
  private trailers: IncomingHttpHeaders | undefined;
  private chunks: Buffer[] = [];
  private error: Error | undefined;

  constructor(
    private readonly session: Http2SessionManager,
    private readonly method: DescMethodUnary<DescMessage, O>,
    private readonly body: Uint8Array,
    private readonly resolve: (m: MessageShape<O>) => void,
    private readonly reject: (e: ConnectError) => void,
  ) {}

  start(path: string, { timeoutMs, signal }: UnaryCallOptions): void {
    if (signal.aborted) return this.cancel(signal);
    if (timeoutMs <= 0) return this.fail(deadlineError());
    const headers: Record<string, string> = { "content-type": "application/grpc+proto", te: "trailers" };
    if (Number.isFinite(timeoutMs) && timeoutMs <= MAX_TIMER_MS) {
      const ms = Math.ceil(timeoutMs);
      // grpc-timeout holds at most 8 digits.
      headers["grpc-timeout"] = ms < 1e8 ? `${ms}m` : `${Math.ceil(ms / 1000)}S`;
      this.timer = setTimeout(onDeadline, ms, this);
    }
    this.signal = signal;
    signal.addEventListener("abort", this);
    this.session.request("POST", path, headers, {}).then(
      (stream) => this.send(stream),
      (e: unknown) => this.fail(fromNodeError(e)),
    );
  }

  /** The caller's signal aborted (EventListener interface: one object, no bound function). */
  handleEvent(): void {
    if (this.signal !== undefined) this.cancel(this.signal);
  }

  private send(stream: ClientHttp2Stream): void {
    if (this.done) {
      // The deadline or the caller's signal won while the connection was being opened. The
      // stream is reset unused; an error on it (the connection failing meanwhile) is nobody's.
      stream.on("error", ignore);
      stream.close(constants.NGHTTP2_CANCEL);
      return;
    }
    this.stream = stream;
    (stream as CallStream)[CALL] = this;
    stream.on("response", onResponse);
    stream.on("data", onData);
    stream.on("trailers", onTrailers);
    stream.on("error", onError);
    stream.on("close", onClose);
    stream.end(this.body);
  }

  response(headers: IncomingHttpHeaders): void {
    this.headers = headers;
  }

  data(chunk: Buffer): void {
    this.chunks.push(chunk);
    if (this.stream !== undefined) this.session.notifyResponseByteRead(this.stream);
  }

  trailersReceived(trailers: IncomingHttpHeaders): void {
    this.trailers = trailers;
  }

  streamError(e: Error): void {
    this.error ??= e;
  }

  /** The stream is gone: the outcome is whatever it left behind. */
  closed(): void {
    if (this.done) return;
    const headers = this.headers;
    if (headers !== undefined && !isGrpc(headers)) {
      // Not a gRPC server (a proxy's error page): gRPC reads its HTTP status.
      const httpStatus = Number(headers[":status"]);
      const type = headers["content-type"];
      const what = type === undefined ? "no content type" : `content type "${type}"`;
      return this.fail(new ConnectError(`HTTP ${httpStatus} with ${what}, not a gRPC response`, codeOfHttpStatus(httpStatus)));
    }
    const status = this.trailers?.["grpc-status"] ?? headers?.["grpc-status"];
    if (status !== undefined) return this.finish(status, (this.trailers ?? headers) as IncomingHttpHeaders);
    // A reset by the server is read by its HTTP/2 code (Node reports it as ERR_HTTP2_STREAM_ERROR,
    // whatever the code: REFUSED_STREAM, "never processed", would read as INTERNAL); any other
    // stream error by its Node code; then a reset without an error (CANCEL, as a connection
    // closing under the stream leaves it).
    const rst = this.stream?.rstCode ?? constants.NGHTTP2_NO_ERROR;
    const error = this.error;
    if (error !== undefined && (error as { code?: unknown }).code !== "ERR_HTTP2_STREAM_ERROR") return this.fail(fromNodeError(error));
    const reset = rst === constants.NGHTTP2_NO_ERROR ? undefined : fromResetCode(rst, error);
    if (reset !== undefined) return this.fail(reset);
    if (error !== undefined) return this.fail(fromNodeError(error));
    if (headers !== undefined) {
      const httpStatus = Number(headers[":status"]);
      if (httpStatus !== 200) return this.fail(new ConnectError(`HTTP ${httpStatus} without a gRPC status`, codeOfHttpStatus(httpStatus)));
    }
    this.fail(new ConnectError("protocol error: the stream ended without a gRPC status", Code.Internal));
  }

  private finish(status: string | string[], meta: IncomingHttpHeaders): void {
    const code = typeof status === "string" && /^\d{1,2}$/.test(status) ? Number(status) : -1;
    if (code < 0 || code > 16) {
      return this.fail(new ConnectError(`protocol error: invalid grpc-status ${String(status)}`, Code.Internal));
    }
    if (code !== 0) return this.fail(new ConnectError(grpcMessage(meta["grpc-message"]), code as Code));
    const body = this.chunks.length === 1 ? (this.chunks[0] as Buffer) : Buffer.concat(this.chunks);
    if (body.length < 5) return this.fail(new ConnectError("protocol error: the response carries no message", Code.Internal));
    if ((body[0] as number) !== 0) return this.fail(new ConnectError("protocol error: compressed response the client never asked for", Code.Internal));
    const length = body.readUInt32BE(1);
    if (body.length !== 5 + length) {
      return this.fail(new ConnectError(`protocol error: expected one response message of ${length} bytes, got ${body.length - 5}`, Code.Internal));
    }
    let message: MessageShape<O>;
    try {
      message = fromBinary(this.method.output, body.subarray(5));
    } catch (e) {
      return this.fail(new ConnectError(`protocol error: response does not parse: ${(e as Error).message}`, Code.Internal, undefined, undefined, e));
    }
    this.end();
    this.resolve(message);
  }

  private cancel(signal: AbortSignal): void {
    const reason: unknown = signal.reason;
    this.fail(new ConnectError(reason instanceof Error ? reason.message : String(reason), Code.Canceled, undefined, undefined, reason));
  }

  fail(e: ConnectError): void {
    if (this.done) return;
    this.end();
    // A call given up on (deadline, cancel) must not hold its stream open on the server.
    if (this.stream !== undefined && !this.stream.closed) this.stream.close(constants.NGHTTP2_CANCEL);
    this.reject(e);
  }

  private end(): void {
    this.done = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.signal?.removeEventListener("abort", this);
  }
}

function onDeadline(call: UnaryCall<DescMessage>): void {
  call.fail(deadlineError());
}

// The stream's listeners are shared by every call: each finds its call on the stream (Node calls
// a listener with the emitter as `this`), so a call allocates no function per listener.
const CALL = Symbol("limitr.unaryCall");
type CallStream = ClientHttp2Stream & { [CALL]: UnaryCall<DescMessage> };

function onResponse(this: CallStream, headers: IncomingHttpHeaders): void {
  this[CALL].response(headers);
}
function onData(this: CallStream, chunk: Buffer): void {
  this[CALL].data(chunk);
}
function onTrailers(this: CallStream, trailers: IncomingHttpHeaders): void {
  this[CALL].trailersReceived(trailers);
}
function onError(this: CallStream, e: Error): void {
  this[CALL].streamError(e);
}
function onClose(this: CallStream): void {
  this[CALL].closed();
}

function deadlineError(): ConnectError {
  return new ConnectError("the operation timed out", Code.DeadlineExceeded);
}

/** The gRPC length-prefixed message: flag 0 (uncompressed), 4-byte big-endian length, bytes. */
function frame(message: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(5 + message.length);
  out[0] = 0;
  out.writeUInt32BE(message.length, 1);
  out.set(message, 5);
  return out;
}

/** grpc-message is percent-encoded (gRPC over HTTP/2); a malformed one is shown as sent. */
function grpcMessage(raw: string | string[] | undefined): string {
  const text = Array.isArray(raw) ? raw.join(",") : (raw ?? "");
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

const ignore = (): void => undefined;

/** `application/grpc`, with or without a `+codec` or parameters. */
function isGrpc(headers: IncomingHttpHeaders): boolean {
  const type = headers["content-type"];
  return typeof type === "string" && /^application\/grpc(?:[+;]|$)/i.test(type);
}

/**
 * A stream reset by its HTTP/2 code, mapped as connect-node does, except CANCEL: a call the caller
 * cancelled never gets here (it failed first), so a CANCEL is the server's or a dying connection's,
 * UNAVAILABLE. The cause carries the code as `NGHTTP2_<NAME>` (the retry rules read
 * `NGHTTP2_REFUSED_STREAM`: a refused stream was never processed) and Node's error, if any.
 */
function fromResetCode(rst: number, nodeError: Error | undefined): ConnectError | undefined {
  const known = RESET_CODES[rst];
  if (known === undefined) return undefined;
  const message = `http/2 stream closed with error code ${known[0]} (0x${rst.toString(16)})`;
  const cause = Object.assign(new Error(message, nodeError === undefined ? undefined : { cause: nodeError }), { code: `NGHTTP2_${known[0]}` });
  return new ConnectError(message, known[1], undefined, undefined, cause);
}

/** HTTP/2 error codes (RFC 9113 §7) by number, with the gRPC code each maps to; NO_ERROR and STREAM_CLOSED map to none. */
const RESET_CODES: readonly (readonly [string, Code] | undefined)[] = [
  undefined,
  ["PROTOCOL_ERROR", Code.Internal],
  ["INTERNAL_ERROR", Code.Internal],
  ["FLOW_CONTROL_ERROR", Code.Internal],
  ["SETTINGS_TIMEOUT", Code.Internal],
  undefined,
  ["FRAME_SIZE_ERROR", Code.Internal],
  ["REFUSED_STREAM", Code.Unavailable],
  ["CANCEL", Code.Unavailable],
  ["COMPRESSION_ERROR", Code.Internal],
  ["CONNECT_ERROR", Code.Internal],
  ["ENHANCE_YOUR_CALM", Code.ResourceExhausted],
  ["INADEQUATE_SECURITY", Code.PermissionDenied],
  ["HTTP_1_1_REQUIRED", Code.PermissionDenied],
];

/** gRPC's mapping of an HTTP status that came without a gRPC status (gRPC's http-grpc-status-mapping). */
function codeOfHttpStatus(status: number): Code {
  switch (status) {
    case 400:
      return Code.Internal;
    case 401:
      return Code.Unauthenticated;
    case 403:
      return Code.PermissionDenied;
    case 404:
      return Code.Unimplemented;
    case 429:
    case 502:
    case 503:
    case 504:
      return Code.Unavailable;
    default:
      return Code.Unknown;
  }
}

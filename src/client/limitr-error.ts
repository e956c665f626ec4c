/**
 * The one error the client throws: a gRPC status (canonical upper-case code name) with the
 * server's message. Denials are not errors; they are decisions with `allowed: false`.
 */
import { Code, ConnectError } from "@connectrpc/connect";

/** gRPC canonical code names, indexed by code number. */
const CODE_NAMES = [
  "OK",
  "CANCELLED",
  "UNKNOWN",
  "INVALID_ARGUMENT",
  "DEADLINE_EXCEEDED",
  "NOT_FOUND",
  "ALREADY_EXISTS",
  "PERMISSION_DENIED",
  "RESOURCE_EXHAUSTED",
  "FAILED_PRECONDITION",
  "ABORTED",
  "OUT_OF_RANGE",
  "UNIMPLEMENTED",
  "INTERNAL",
  "UNAVAILABLE",
  "DATA_LOSS",
  "UNAUTHENTICATED",
] as const;

/** A gRPC status code name such as `INVALID_ARGUMENT` or `UNAVAILABLE`. */
export type StatusCodeName = (typeof CODE_NAMES)[number];

/**
 * A failed call: `code` is the gRPC status, `attempts` how many times it was tried, and for a call
 * that carried an idempotency key (Allow, Record, Reserve, Settle; Check when given one) that key.
 * A failure that may follow a request the sidecar committed (DEADLINE_EXCEEDED, UNAVAILABLE, …)
 * is safe to try again only with the same key: a new one would count the usage twice.
 */
export class LimitrError extends Error {
  override readonly name = "LimitrError";
  /** The key every attempt of the call sent; pass it as `idempotencyKey` to retry the call yourself. */
  declare readonly idempotencyKey?: string;
  constructor(
    message: string,
    readonly code: StatusCodeName,
    readonly method: string,
    readonly attempts: number,
    options?: { cause?: unknown; idempotencyKey?: string | undefined },
  ) {
    super(message, options);
    if (options?.idempotencyKey) this.idempotencyKey = options.idempotencyKey;
  }
}

/** Wraps any failure of a call as a LimitrError (keeping the original as `cause`). */
export function toLimitrError(e: unknown, method: string, attempts: number, idempotencyKey?: string): LimitrError {
  if (e instanceof LimitrError) return e;
  const ce = ConnectError.from(e);
  const code = CODE_NAMES[ce.code] ?? "UNKNOWN";
  return new LimitrError(`${method}: ${code}: ${ce.rawMessage}`, code, method, attempts, { cause: e, idempotencyKey });
}

/**
 * The failure of a call cut short by its own signal (the caller's `signal` or `close()`): always
 * CANCELLED, whatever the last attempt failed with (e.g. UNAVAILABLE before a backoff), as the
 * `close()` contract says; that attempt's error stays reachable as `cause`.
 */
export function cancelledError(signal: AbortSignal, method: string, attempts: number, last: unknown, idempotencyKey?: string): LimitrError {
  const reason: unknown = signal.reason;
  const why = reason instanceof Error ? reason.message : String(reason);
  return new LimitrError(`${method}: CANCELLED: ${why}`, "CANCELLED", method, attempts, { cause: last, idempotencyKey });
}

/**
 * Whether a failed attempt is worth another: UNAVAILABLE (which is what the unary calls report
 * for a connection that could not be opened or died under them), DEADLINE_EXCEEDED, and a lost
 * connection as the event stream's transport (connect-node) reports it: the socket error as
 * cause, or CANCELLED, the stream a dying connection (kill -9, a proxy dropping it) reset with
 * CANCEL. CANCELLED is the caller's own decision, final, when `own` (the signal of the caller and
 * of `close()`) has aborted.
 */
export function isRetryable(e: unknown, own: AbortSignal | undefined): boolean {
  if (own?.aborted) return false;
  const ce = ConnectError.from(e);
  if (ce.code === Code.Unavailable || ce.code === Code.DeadlineExceeded || ce.code === Code.Canceled) return true;
  const cause = ce.cause as { code?: unknown } | undefined;
  return typeof cause?.code === "string" && /^(ECONNREFUSED|ECONNRESET|EPIPE|ENOENT|ETIMEDOUT|ERR_HTTP2_|NGHTTP2_)/.test(cause.code);
}

/**
 * Whether a failure proves the sidecar never processed the request: the connection could not be
 * opened (refused, no such unix socket), or the server refused the stream (REFUSED_STREAM, which
 * HTTP/2 guarantees was not processed: a sidecar shutting down answers so). Anything else
 * retryable (DEADLINE_EXCEEDED, a connection lost under the stream, UNAVAILABLE from the server)
 * may follow a request the sidecar committed.
 */
export function neverSent(e: unknown): boolean {
  const cause = ConnectError.from(e).cause as { code?: unknown } | undefined;
  return cause?.code === "ECONNREFUSED" || cause?.code === "ENOENT" || cause?.code === "NGHTTP2_REFUSED_STREAM";
}

/**
 * What a failure of the connection under a call is to the app: UNAVAILABLE, the code it retries,
 * as gRPC's own clients report it. connect-node reports a missing unix socket as INTERNAL, a reset
 * socket as ABORTED, a session a server closed with an error code as INTERNAL, and a stream a
 * dying connection reset as CANCELLED, which would read as a sidecar bug or as the app's own
 * cancellation.
 */
import { Code, ConnectError } from "@connectrpc/connect";

/**
 * Node error codes of a connection that could not be opened or that died under the call:
 * ERR_STREAM_DESTROYED and ERR_HTTP2_INVALID_STREAM are what Node says of a stream whose session
 * was destroyed (connect-node: ABORTED); ERR_HTTP2_SESSION_ERROR and ERR_HTTP2_GOAWAY_SESSION of
 * a session the server closed with an error code (grpc-js's forceShutdown at the end of a
 * sidecar's shutdown grace sends CANCEL).
 */
const CONNECTION_FAILURES: ReadonlySet<unknown> = new Set([
  "ECONNREFUSED",
  "ENOENT",
  "ECONNRESET",
  "ECONNABORTED",
  "EPIPE",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENOTFOUND",
  "EAI_AGAIN",
  "ERR_STREAM_DESTROYED",
  "ERR_HTTP2_INVALID_STREAM",
  "ERR_HTTP2_SESSION_ERROR",
  "ERR_HTTP2_GOAWAY_SESSION",
]);

/**
 * A failure classified by the Node codes along its cause chain, the Node error kept as `cause`: a
 * connection failure is UNAVAILABLE, whether it comes as a Node error or as the ConnectError
 * connect-node made of one; any other ConnectError (a PING timeout) as it is, anything else
 * INTERNAL.
 */
export function fromNodeError(e: unknown): ConnectError {
  for (let x: unknown = e, n = 0; x instanceof Error && n < 8; x = x.cause, n++) {
    if (CONNECTION_FAILURES.has((x as { code?: unknown }).code)) {
      const cause = e instanceof ConnectError && e.cause !== undefined ? e.cause : e;
      return new ConnectError(e instanceof ConnectError ? e.rawMessage : (e as Error).message, Code.Unavailable, undefined, undefined, cause);
    }
  }
  if (e instanceof ConnectError) return e;
  return new ConnectError(e instanceof Error ? e.message : String(e), Code.Internal, undefined, undefined, e);
}

/**
 * A streaming call's failure, the caller's own cancellation excluded (the caller checks its
 * signal first): as `fromNodeError`, and a CANCELLED, which connect-node makes of a stream reset
 * with CANCEL as a killed sidecar's connection leaves it, is UNAVAILABLE too.
 */
export function fromStreamFailure(e: unknown): ConnectError {
  const ce = fromNodeError(e);
  return ce.code === Code.Canceled ? new ConnectError(ce.rawMessage, Code.Unavailable, undefined, undefined, ce.cause ?? ce) : ce;
}

/**
 * The one place errors become statuses. Handlers throw `LimitrError`s (or anything else, by
 * mistake); this maps them to a `ConnectError`, whose numeric codes are the gRPC status codes,
 * so both the connect-node endpoint and the grpc-js adapter answer from the same mapping.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import type { ErrorCode } from "../errors/index.js";
import { isLimitrError } from "../errors/index.js";
import type { ServerLogger } from "./server-deps.js";

const CODE: Record<ErrorCode, Code> = {
  INVALID_ARGUMENT: Code.InvalidArgument,
  NOT_FOUND: Code.NotFound,
  ALREADY_EXISTS: Code.AlreadyExists,
  FAILED_PRECONDITION: Code.FailedPrecondition,
  OUT_OF_RANGE: Code.OutOfRange,
  RESOURCE_EXHAUSTED: Code.ResourceExhausted,
  UNAVAILABLE: Code.Unavailable,
  DEADLINE_EXCEEDED: Code.DeadlineExceeded,
  CANCELLED: Code.Canceled,
  INTERNAL: Code.Internal,
};

/** What a client sees for a failure we did not anticipate: nothing about our internals. */
export const INTERNAL_MESSAGE = "internal error";

/**
 * Maps any thrown value to the `ConnectError` a client receives. A `ConnectError` passes through
 * (the server made it on purpose), a `LimitrError` keeps its code and message (which name the
 * field), and anything else is logged with its stack and answered with a generic INTERNAL.
 */
export function toConnectError(err: unknown, logger: ServerLogger, rpc = ""): ConnectError {
  if (err instanceof ConnectError) return err;
  if (isLimitrError(err)) {
    if (err.code === "INTERNAL" || err.code === "UNAVAILABLE" || err.code === "RESOURCE_EXHAUSTED" || err.code === "FAILED_PRECONDITION") {
      // Server-side failures are worth an operator's attention; bad input is the caller's.
      // (FAILED_PRECONDITION comes only from the store: another process took the data dir over.)
      logger.warn("rpc failed", { rpc, code: err.code, error: err.message, cause: describe(err.cause) });
    }
    return new ConnectError(err.message, CODE[err.code], undefined, undefined, err);
  }
  logger.error("unexpected error in rpc", { rpc, error: describe(err) });
  return new ConnectError(INTERNAL_MESSAGE, Code.Internal, undefined, undefined, err);
}

/** The gRPC status (code number and details) for any thrown value: `toConnectError`'s verdict. */
export function toGrpcStatus(err: unknown, logger: ServerLogger, rpc = ""): { code: number; details: string } {
  const ce = toConnectError(err, logger, rpc);
  // Connect's Code enum uses the gRPC status numbers (Canceled = 1 … Unauthenticated = 16).
  return { code: ce.code, details: ce.rawMessage };
}

function describe(e: unknown): string | undefined {
  if (e === undefined) return undefined;
  if (e instanceof Error) return e.stack ?? `${e.name}: ${e.message}`;
  return String(e);
}

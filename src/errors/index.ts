/**
 * The one error class of limitr-sidecar. Expected outcomes (a denial, a rejected policy) are
 * values, never errors; a `LimitrError` is for input that cannot be decided on or a part that
 * failed. Codes are named after gRPC status codes so that exactly one function (in the server)
 * maps them to a status.
 */
export type ErrorCode =
  | "INVALID_ARGUMENT"
  | "NOT_FOUND"
  | "ALREADY_EXISTS"
  | "FAILED_PRECONDITION"
  | "OUT_OF_RANGE"
  | "RESOURCE_EXHAUSTED"
  | "UNAVAILABLE"
  | "DEADLINE_EXCEEDED"
  | "CANCELLED"
  | "INTERNAL";

/** A failure with a closed code, the field it concerns (dotted path, if any) and a cause. */
export class LimitrError extends Error {
  override readonly name = "LimitrError";
  readonly code: ErrorCode;
  /** Dotted path of the offending input field, e.g. `items[1].amount`; empty when none. */
  readonly field: string;

  constructor(code: ErrorCode, message: string, options: { field?: string; cause?: unknown } = {}) {
    super(options.field ? `${options.field}: ${message}` : message, { cause: options.cause });
    this.code = code;
    this.field = options.field ?? "";
  }
}

/** Shorthand for the most common error: bad input naming its field. */
export function invalidArgument(field: string, message: string): LimitrError {
  return new LimitrError("INVALID_ARGUMENT", message, { field });
}

/** True for a `LimitrError`, optionally of one code. */
export function isLimitrError(e: unknown, code?: ErrorCode): e is LimitrError {
  return e instanceof LimitrError && (code === undefined || e.code === code);
}

/**
 * Maps failures of LMDB and of the file system to `LimitrError`s at the store boundary, so the
 * server maps them to a gRPC status with a message an operator can act on, and the original error
 * stays attached as the cause.
 */
import { LimitrError, isLimitrError } from "../errors/index.js";

function describe(e: unknown): { readonly code: string; readonly message: string } {
  if (e instanceof Error) {
    const code = (e as Error & { code?: unknown }).code;
    return { code: typeof code === "string" ? code : "", message: e.message };
  }
  return { code: "", message: String(e) };
}

/** Wraps `e` (thrown while `action`, e.g. "committing 12 writes") into a `LimitrError`. */
export function storeError(e: unknown, action: string): LimitrError {
  if (isLimitrError(e)) return e;
  const { code, message } = describe(e);
  const text = `${code} ${message}`;
  if (/MDB_MAP_FULL|ENOSPC|EFBIG|EDQUOT|No space left/i.test(text)) {
    return new LimitrError(
      "RESOURCE_EXHAUSTED",
      `storage full while ${action}: ${message} (free disk space, prune events, or raise the store size limit)`,
      { cause: e },
    );
  }
  if (/EACCES|EPERM|EROFS|read-only|Permission denied/i.test(text)) {
    return new LimitrError("UNAVAILABLE", `storage is not writable while ${action}: ${message}`, { cause: e });
  }
  if (/closed/i.test(text)) {
    return new LimitrError("UNAVAILABLE", `store is closed (while ${action})`, { cause: e });
  }
  return new LimitrError("UNAVAILABLE", `storage failed while ${action}: ${message}`, { cause: e });
}

/** The error of any use of a store after `close()`. */
export function closedError(action: string): LimitrError {
  return new LimitrError("UNAVAILABLE", `store is closed (while ${action})`);
}

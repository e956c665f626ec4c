/**
 * Maps failures of LMDB and of the file system to `LimitrError`s at the store boundary, so the
 * server maps them to a gRPC status with a message an operator can act on, and the original error
 * stays attached as the cause.
 */
import { existsSync, statfsSync } from "node:fs";
import { dirname } from "node:path";
import { LimitrError, isLimitrError } from "../errors/index.js";

/** Below this much free space, a write that failed with EIO is reported as storage full. */
const NEARLY_FULL_BYTES = 1024 * 1024;

/**
 * Free space without which LMDB is not let create its files (`assertRoomToCreate`). A new data
 * dir's lock file and first pages take under 64 KiB; the rest is room for the open's own writes.
 * Well under NEARLY_FULL_BYTES: a small volume (a 1 MiB tmpfs) still takes a small store.
 */
const ROOM_TO_CREATE_BYTES = 256 * 1024;

/** What a running sidecar's operator can do about a full store: the end of a storage-full message. */
const FULL_ADVICE = " (free disk space, prune events, or raise the store size limit)";

/**
 * `message`, of a storage-full error or of one that carries its message (an import cut short),
 * without the running sidecar's advice, for a caller that gives its own: an offline import cannot
 * prune events and has no size limit to raise.
 */
export function withoutStoreAdvice(message: string): string {
  return message.replace(FULL_ADVICE, "");
}

function describe(e: unknown): { readonly code: string; readonly message: string } {
  if (e instanceof Error) {
    const code = (e as Error & { code?: unknown }).code;
    return { code: typeof code === "string" ? code : "", message: e.message };
  }
  return { code: "", message: String(e) };
}

function freeBytes(path: string): number | undefined {
  try {
    const s = statfsSync(path);
    return s.bavail * s.bsize;
  } catch {
    return undefined;
  }
}

/**
 * Refuses (RESOURCE_EXHAUSTED) to let LMDB create files under `dir` (it may not exist yet) on a
 * file system with less than ROOM_TO_CREATE_BYTES free. LMDB maps the files it creates (its lock
 * file, a new environment) and uses their pages through the map: where the file system cannot back
 * one, the process dies of SIGBUS or SIGSEGV, which no caller can catch or report; and a write cut
 * short can leave a half-made environment that later opens refuse.
 */
export function assertRoomToCreate(dir: string): void {
  let probe = dir;
  while (!existsSync(probe) && dirname(probe) !== probe) probe = dirname(probe);
  const free = freeBytes(probe);
  if (free === undefined || free >= ROOM_TO_CREATE_BYTES) return;
  throw new LimitrError(
    "RESOURCE_EXHAUSTED",
    `storage full while opening the data dir ${dir}: ${free} bytes free on the file system of ${probe}, ` +
      `less than the ${ROOM_TO_CREATE_BYTES / 1024} KiB required before LMDB creates its files there; nothing was created`,
  );
}

/**
 * Wraps `e` (thrown while `action`, e.g. "committing 12 writes") into a `LimitrError`.
 *
 * `dataPath` (a path on the store's file system) is for failed writes. LMDB reports a write the
 * kernel cut short as EIO ("Input/output error"), and a multi-page write that runs out of disk
 * space midway is cut short, so a full disk can surface as an I/O error. With the file system
 * (nearly) full, that is reported as what it is: RESOURCE_EXHAUSTED, which clients do not retry,
 * rather than UNAVAILABLE, which they do.
 */
export function storeError(e: unknown, action: string, dataPath?: string): LimitrError {
  if (isLimitrError(e)) return e;
  const { code, message } = describe(e);
  const text = `${code} ${message}`;
  const full = (detail: string): LimitrError =>
    new LimitrError(
      "RESOURCE_EXHAUSTED",
      `storage full while ${action}: ${detail}${FULL_ADVICE}`,
      { cause: e },
    );
  if (/MDB_MAP_FULL|ENOSPC|EFBIG|EDQUOT|No space left/i.test(text)) return full(message);
  if (dataPath !== undefined && /EIO|Input\/output error/.test(text)) {
    const free = freeBytes(dataPath);
    if (free !== undefined && free < NEARLY_FULL_BYTES) return full(`${message}, with ${free} bytes free on the file system of ${dataPath}`);
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

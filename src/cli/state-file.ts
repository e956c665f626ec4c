/**
 * `export` / `import`: the stored state as JSON Lines, one proto `StateRecord` in its canonical
 * JSON form per line — the same shape the ExportState RPC streams, so a file made by either
 * can be loaded by either. Quantities are exact decimal strings.
 */
import { createReadStream, createWriteStream } from "node:fs";
import { createInterface } from "node:readline";
import { once } from "node:events";
import { create, fromJsonString, toJsonString } from "@bufbuild/protobuf";
import type { StateRecord } from "../engine/index.js";
import { LimitrError } from "../errors/index.js";
import { StateRecordSchema } from "../gen/limitr/v1/admin_pb.js";
import { fromStateRecordPb, toStateRecordPb } from "../server/index.js";
import { fileError } from "./input-files.js";

/** Progress callback: how many records so far (called every few thousand and at the end). */
export type Progress = (count: number, done: boolean) => void;

const PROGRESS_EVERY = 5_000;

/** Writes every record as one JSON line to `path` (`-` = stdout); resolves with the count. */
export async function writeStateFile(records: Iterable<StateRecord>, path: string, progress: Progress): Promise<number> {
  const out = path === "-" ? process.stdout : createWriteStream(path);
  let count = 0;
  try {
    // Opened before the first record: a path that cannot be written fails at once, not at the end.
    if (out !== process.stdout) await once(out, "open");
    for (const record of records) {
      const line = toJsonString(StateRecordSchema, create(StateRecordSchema, toStateRecordPb(record))) + "\n";
      if (!out.write(line)) await once(out, "drain");
      count += 1;
      if (count % PROGRESS_EVERY === 0) progress(count, false);
    }
    if (out !== process.stdout) {
      out.end();
      await once(out, "finish");
    }
  } catch (e) {
    throw fileError("write", path, e);
  }
  progress(count, true);
  return count;
}

/** Which line of a state file each record came from: blank lines are skipped, so the two differ. */
export interface RecordLines {
  /** The line (1-based) of record `index` (0-based), for a record already read. */
  lineOf(index: number): number;
  /** Told by the reader, record by record. */
  read(index: number, line: number): void;
}

export function createRecordLines(): RecordLines {
  // Only where blank lines shift records: a file without them keeps nothing, however long.
  const from: number[] = [];
  const shift: number[] = [];
  return {
    read(index, line) {
      const s = line - index - 1;
      if (s !== (shift[shift.length - 1] ?? 0)) {
        from.push(index);
        shift.push(s);
      }
    },
    lineOf(index) {
      let lo = 0;
      let hi = from.length;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if ((from[mid] as number) <= index) lo = mid + 1;
        else hi = mid;
      }
      return index + 1 + (lo === 0 ? 0 : (shift[lo - 1] as number));
    },
  };
}

/**
 * Reads JSON Lines from `path` (`-` = stdin) as records, lazily. A bad line is an
 * INVALID_ARGUMENT naming its line number; blank lines are skipped. `lines` learns the line of
 * each record.
 */
export async function* readStateFile(path: string, progress: Progress, lines?: RecordLines): AsyncGenerator<StateRecord> {
  const input = path === "-" ? process.stdin : createReadStream(path);
  const reader = createInterface({ input, crlfDelay: Infinity });
  let lineNo = 0;
  let count = 0;
  const iterator = reader[Symbol.asyncIterator]();
  // Only the reading is the file's failure; a refused record names its line instead.
  const next = async (): Promise<IteratorResult<string>> => {
    try {
      return await iterator.next();
    } catch (e) {
      throw fileError("read", path, e);
    }
  };
  for (let read = await next(); read.done !== true; read = await next()) {
    const line = read.value;
    lineNo += 1;
    if (line.trim() === "") continue;
    let record: StateRecord;
    try {
      record = fromStateRecordPb(fromJsonString(StateRecordSchema, line), `line ${lineNo}`);
    } catch (e) {
      if (e instanceof LimitrError) throw e;
      throw new LimitrError("INVALID_ARGUMENT", (e as Error).message, { field: `line ${lineNo}`, cause: e });
    }
    lines?.read(count, lineNo);
    yield record;
    count += 1;
    if (count % PROGRESS_EVERY === 0) progress(count, false);
  }
  progress(count, true);
}

/**
 * What `maxDataBytes` limits, counted inside a write transaction: the live B-tree pages of every
 * table once that transaction commits.
 *
 * lmdb-js's `getStats()` reads the table's stats but also the environment's and walks the free
 * list: ~5 µs a table, ~34 µs for the seven tables, and a lone Allow paid it on every commit
 * (+77 µs of main thread in rotated rounds, on a sidecar run with `--max-data-bytes` as the
 * deployment runs it). Only the tables a transaction wrote can have changed in it, so those are
 * counted again with LMDB's per-table stat (~1.2 µs) and the others are taken from the last count,
 * as long as no other transaction committed since: the environment's last transaction id says
 * so. Otherwise (a prune, the first commit) every table is counted. A batch that failed to commit
 * changed nothing and moved no id, so the counts from before it stay valid.
 */
import type { Table, Tables } from "./lmdb-layout.js";

/** The part of LMDB's per-table stat that counts pages (lmdb-js `getStats()` has it too). */
export interface PageStat {
  readonly pageSize: number;
  readonly treeBranchPageCount: number;
  readonly treeLeafPageCount: number;
  readonly overflowPages: number;
}

/** lmdb-js's native handles behind a table (not in its typings; checked once at creation). */
interface NativeHandles {
  readonly db: { stat(): PageStat };
  readonly env: { info(): { lastTxnId: number } };
}

export interface DataPages {
  /** Whether lmdb-js's native handles were found; without them every count walks `getStats()`. */
  readonly usesNativeStats: boolean;
  /**
   * Inside a write transaction that changed the tables in `written`: the bytes of live B-tree
   * pages over all tables, as they will be once it commits.
   */
  bytesWith(written: ReadonlySet<keyof Tables>): number;
  /** Once that transaction committed: its counts are the ones to reuse. */
  committed(): void;
}

/** Live B-tree pages of a table: what `maxDataBytes` counts. */
export const pagesOf = (s: PageStat): number => s.treeBranchPageCount + s.treeLeafPageCount + s.overflowPages;

function nativeHandles(table: Table): NativeHandles | undefined {
  const t = table as unknown as Partial<NativeHandles>;
  return typeof t.db?.stat === "function" && typeof t.env?.info === "function" ? (t as NativeHandles) : undefined;
}

export function createDataPages(tables: Tables): DataPages {
  const names = Object.keys(tables) as (keyof Tables)[];
  const handles = names.map((n) => nativeHandles(tables[n]));
  const native = handles.every((h) => h !== undefined) ? (handles as NativeHandles[]) : undefined;
  /** Pages per table (by `names` index) as of the committed transaction `countedAt`. */
  const pages = new Array<number>(names.length).fill(0);
  const pending = new Array<number>(names.length).fill(0);
  let countedAt = -1;
  let pageSize = 4096;

  const count = (i: number): number => {
    const s = native ? (native[i] as NativeHandles).db.stat() : (tables[names[i] as keyof Tables].getStats() as PageStat);
    pageSize = s.pageSize;
    return pagesOf(s);
  };
  const lastTxnId = (): number => (native ? (native[0] as NativeHandles).env.info().lastTxnId : -2);

  return {
    usesNativeStats: native !== undefined,
    bytesWith(written) {
      // Without the native handles there is no transaction id to trust: count everything.
      const all = !native || lastTxnId() !== countedAt;
      let total = 0;
      for (let i = 0; i < names.length; i++) {
        const n = all || written.has(names[i] as keyof Tables) ? count(i) : (pages[i] as number);
        pending[i] = n;
        total += n;
      }
      return total * pageSize;
    },
    committed() {
      for (let i = 0; i < names.length; i++) pages[i] = pending[i] as number;
      countedAt = lastTxnId();
    },
  };
}

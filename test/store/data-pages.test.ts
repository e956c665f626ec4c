import fc from "fast-check";
import { afterEach, describe, expect, it } from "vitest";
import { isLimitrError } from "../../src/errors/index.js";
import { createDataPages, type DataPages } from "../../src/store/data-pages.js";
import { openLayout, type Layout, type Table, type Tables } from "../../src/store/lmdb-layout.js";
import { createLmdbStore } from "../../src/store/index.js";
import { customer, meter, meterEvent } from "./fixtures.js";
import { tempDir } from "./temp-store.js";

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function layout(fsync = false): Layout {
  const t = tempDir();
  const l = openLayout({ dir: t.dir, fsync, mapSizeBytes: undefined });
  cleanups.push(t.remove, () => l.env.close());
  return l;
}

/** What `getStats()` says, table by table: the slow count the fast one must equal. */
function fullCount(tables: Tables): number {
  let bytes = 0;
  for (const t of Object.values(tables)) {
    const s = t.getStats() as { pageSize: number; treeBranchPageCount: number; treeLeafPageCount: number; overflowPages: number };
    bytes += (s.treeBranchPageCount + s.treeLeafPageCount + s.overflowPages) * s.pageSize;
  }
  return bytes;
}

const TABLE_KEYS = ["customers", "altIds", "meters", "reservations", "idempotency", "idempotencyExpiry", "events"] as const;

interface Txn {
  readonly kind: "counted" | "foreign" | "aborted";
  readonly ops: readonly { readonly table: keyof Tables; readonly key: number; readonly size: number; readonly remove: boolean }[];
}

/** A transaction: puts (a value size, small to several pages) and deletes over a few tables. */
const txnArb: fc.Arbitrary<Txn> = fc.record({
  kind: fc.constantFrom<Txn["kind"]>("counted", "counted", "counted", "foreign", "aborted"),
  ops: fc.array(
    fc.record({
      table: fc.constantFrom(...TABLE_KEYS),
      key: fc.integer({ min: 0, max: 300 }),
      size: fc.oneof(fc.integer({ min: 0, max: 300 }), fc.integer({ min: 2000, max: 20_000 })),
      remove: fc.boolean(),
    }),
    { minLength: 1, maxLength: 40 },
  ),
});

/**
 * Runs the transactions on a real environment: a counted one asks `pages` inside it and checks the
 * answer against the full count; a foreign one (what pruning does) is never shown to `pages`; an
 * aborted one asks and then throws.
 */
function replay(l: Layout, pages: DataPages, txns: readonly Txn[]): void {
  for (const txn of txns) {
    const written = new Set<keyof Tables>();
    try {
      l.env.transactionSync(() => {
        for (const op of txn.ops) {
          written.add(op.table);
          const t = l.tables[op.table];
          if (op.remove) t.removeSync(op.key);
          else t.putSync(op.key, "x".repeat(op.size));
        }
        if (txn.kind === "foreign") return;
        expect(pages.bytesWith(written)).toBe(fullCount(l.tables));
        if (txn.kind === "aborted") throw new Error("abort");
      });
    } catch (e) {
      if (!(e instanceof Error && e.message === "abort")) throw e;
      continue;
    }
    if (txn.kind === "counted") pages.committed();
  }
}

describe("data pages", () => {
  it("finds lmdb-js's native stat handles (without them every commit walks getStats again)", () => {
    const l = layout();
    expect(createDataPages(l.tables).usesNativeStats).toBe(true);
  });

  it("counts what getStats counts, across foreign and aborted transactions", () => {
    fc.assert(
      fc.property(fc.array(txnArb, { minLength: 1, maxLength: 25 }), (txns) => {
        const l = layout();
        replay(l, createDataPages(l.tables), txns);
      }),
      { numRuns: 30 },
    );
  });

  it("counts the same with --fsync (LMDB's overlapping sync mode)", () => {
    fc.assert(
      fc.property(fc.array(txnArb, { minLength: 1, maxLength: 10 }), (txns) => {
        const l = layout(true);
        replay(l, createDataPages(l.tables), txns);
      }),
      { numRuns: 8 },
    );
  });

  it("counts the same without lmdb-js's native handles, from getStats alone", () => {
    fc.assert(
      fc.property(fc.array(txnArb, { minLength: 1, maxLength: 10 }), (txns) => {
        const l = layout();
        const plain = Object.fromEntries(
          TABLE_KEYS.map((k) => [k, { getStats: () => l.tables[k].getStats() } as unknown as Table]),
        ) as unknown as Tables;
        const pages = createDataPages(plain);
        expect(pages.usesNativeStats).toBe(false);
        replay(l, pages, txns);
      }),
      { numRuns: 10 },
    );
  });
});

describe("the store's data budget", () => {
  it("takes a write that fits once pruning made room, though the write does not touch the pruned table", async () => {
    const t = tempDir();
    cleanups.push(t.remove);
    const limit = 400 * 1024;
    const s = createLmdbStore({ path: t.dir, maxDataBytes: limit });
    cleanups.push(() => s.close());
    // Fill the event log until a 150 KB customer no longer fits beside it.
    for (let i = 0; i < 2000; i++) {
      await s.commit([{ kind: "meter-put", meter: meter("c1", "chat", BigInt(i)) }], [meterEvent("c1", "chat", 1n, { time: i })]);
    }
    expect(s.stats().dataBytes).toBeGreaterThan(limit - 150 * 1024);
    const big = customer("big", { metadata: { blob: "x".repeat(150 * 1024) } });
    const refused = await s.commit([{ kind: "customer-put", customer: big, previous: undefined }], []).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isLimitrError(refused, "RESOURCE_EXHAUSTED")).toBe(true);
    // Pruning is a transaction of its own; the next batch writes only the customers table.
    await s.pruneEvents({ maxCount: 10, now: Date.now() });
    expect(s.stats().dataBytes).toBeLessThan(limit - 200 * 1024);
    await s.commit([{ kind: "customer-put", customer: big, previous: undefined }], []);
    expect(s.getCustomer("big")?.metadata).toEqual({ blob: "x".repeat(150 * 1024) });
  });
});

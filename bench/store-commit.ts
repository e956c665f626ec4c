/**
 * Commit throughput of the LMDB store: one meter changed per commit (with its event), as a single
 * Allow does. Sequential = one caller awaiting each commit; concurrent = 64 commits in flight.
 * Also times the alternative that was considered, lmdb-js's own asynchronous batched `put`s
 * (committed on its write thread), for the same shape of load.
 *
 *   npx tsc -p tsconfig.tools.json && node build/bench/store-commit.js
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { open } from "lmdb";
import { NO_HOLD_SUMMARY, type EngineEvent, type Meter } from "../src/engine/index.js";
import { createLmdbStore } from "../src/store/index.js";

const IN_FLIGHT = 64;

function meter(value: bigint): Meter {
  return { owner: "c1", entitlement: "chat", credit: "tokens", periodStart: 0, value, overhead: 0n, billedOverage: 0n, resetRule: "never", judgedAt: 0, holdSummary: NO_HOLD_SUMMARY, thresholdsReached: [] };
}

function event(value: bigint): EngineEvent {
  return {
    type: "meter-changed", time: Date.now(), customerId: "c1", owner: "c1", entitlement: "chat", plan: "pro",
    credit: "tokens", unit: "tokens", mode: "hard", oldValue: value - 1n, newValue: value, limit: 10n ** 18n,
    diff: 1n, remaining: 10n ** 18n - value, overage: 0n, overagePrice: undefined, periodStart: 0,
    attributes: { model: "m" }, policyVersion: "v1", idempotencyKey: "",
  };
}

function withDir<T>(f: (dir: string) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), "limitr-bench-"));
  return f(dir).finally(() => rmSync(dir, { recursive: true, force: true }));
}

async function storeRun(fsync: boolean, concurrent: boolean, n: number): Promise<{ perSec: number; batches: number }> {
  return withDir(async (path) => {
    const store = createLmdbStore({ path, fsync });
    const one = (): Promise<unknown> => {
      const v = (store.getMeter("c1", "chat")?.value ?? 0n) + 1n;
      return store.commit([{ kind: "meter-put", meter: meter(v) }], [event(v)]);
    };
    const t0 = performance.now();
    if (concurrent) {
      for (let i = 0; i < n; i += IN_FLIGHT) await Promise.all(Array.from({ length: IN_FLIGHT }, one));
    } else {
      for (let i = 0; i < n; i++) await one();
    }
    const ms = performance.now() - t0;
    const batches = store.stats().batchesCommitted;
    await store.close();
    return { perSec: Math.round((n / ms) * 1000), batches };
  });
}

async function lmdbAsyncRun(fsync: boolean, concurrent: boolean, n: number): Promise<number> {
  return withDir(async (dir) => {
    const env = open({ path: join(dir, "x.mdb"), noSync: !fsync, overlappingSync: fsync, maxDbs: 4 });
    const meters = env.openDB({ name: "meters" });
    const events = env.openDB({ name: "events" });
    let seq = 0;
    const one = async (): Promise<void> => {
      const s = ++seq;
      void meters.put(["c1", "chat"], [1, "c1", "chat", s]);
      await events.put(s, [1, { type: "meter-changed", diff: 1 }]);
      if (fsync) await env.flushed;
    };
    const t0 = performance.now();
    if (concurrent) {
      for (let i = 0; i < n; i += IN_FLIGHT) await Promise.all(Array.from({ length: IN_FLIGHT }, one));
    } else {
      for (let i = 0; i < n; i++) await one();
    }
    const ms = performance.now() - t0;
    await env.close();
    return Math.round((n / ms) * 1000);
  });
}

const rows: string[][] = [["durability", "mode", "store commits/s", "store txns", "lmdb-js async put commits/s"]];
for (const fsync of [false, true]) {
  for (const concurrent of [false, true]) {
    const n = concurrent ? 64_000 : fsync ? 2_000 : 20_000;
    await storeRun(fsync, concurrent, Math.min(n, 2000)); // warm-up
    const r = await storeRun(fsync, concurrent, n);
    const alt = await lmdbAsyncRun(fsync, concurrent, n);
    rows.push([
      fsync ? "fsync" : "process-crash safe",
      concurrent ? `concurrent (${IN_FLIGHT} in flight)` : "sequential",
      String(r.perSec),
      `${r.batches} for ${n}`,
      String(alt),
    ]);
  }
}
const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
for (const r of rows) console.log(r.map((c, i) => c.padEnd(widths[i]!)).join("  "));

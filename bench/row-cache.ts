/**
 * Microbenchmark: the row cache in the two access patterns of a busy sidecar with more customers
 * than the cache holds, against the cache it replaced (one Map, the oldest entry evicted with
 * `keys().next()` + `delete`, and every key a commit writes deleted at once and put back when the
 * batch commits). Prints ns per operation (median of 7 rounds).
 *
 * - hot meter: 10,000 other keys cached; 64 Allows per batch on one meter (h2load's 64 in flight);
 * - streaming: a new key per operation into a full cache (10,000 distinct customers in turn).
 *
 *   npx tsc -p bench/tsconfig.json && node build/bench/row-cache.js
 */
import { createRowCache } from "../src/store/row-cache.js";

const CAPACITY = 10_000;
const BATCH = 64;
const ROUNDS = 7;

/** The cache before this one, as the store used it. */
function fifoCache(capacity: number) {
  const entries = new Map<string, unknown>();
  return {
    set(slot: string, value: unknown): void {
      if (entries.size >= capacity && !entries.has(slot)) {
        const oldest = entries.keys().next();
        if (oldest.done !== true) entries.delete(oldest.value);
      }
      entries.set(slot, value);
    },
    delete(slot: string): void {
      entries.delete(slot);
    },
  };
}

/** Runs `f` (which does `ops` operations) `calls` times per round; median ns per operation. */
function perOp(f: () => void, ops: number, calls: number): number {
  for (let i = 0; i < calls; i++) f();
  const rounds: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < calls; i++) f();
    rounds.push(Number(process.hrtime.bigint() - t0) / (calls * ops));
  }
  return rounds.sort((a, b) => a - b)[ROUNDS >> 1] ?? NaN;
}

const others = Array.from({ length: CAPACITY }, (_, i) => `meters\u00009\u0000distinct_${i}requests`);
const HOT = "meters\u00009\u0000bench_hotrequests";

interface Settable {
  set(slot: string, value: unknown): void;
}

/** ns per Allow on the hot meter of a full cache; `batch` does one batch of BATCH Allows. */
function hotMeter(cache: Settable, batch: (next: () => number) => void): number {
  for (const k of others) cache.set(k, 1);
  cache.set(HOT, 0);
  let v = 0;
  return perOp(() => batch(() => ++v), BATCH, 2_000);
}

// Before: each commit deleted the key; the batch put it back once committed.
const before = fifoCache(CAPACITY);
const hb = hotMeter(before, (next) => {
  for (let i = 0; i < BATCH; i++) before.delete(HOT);
  before.set(HOT, next());
});
// Now: the batch puts each commit's value once committed (in place: the key is cached).
const now = createRowCache(CAPACITY);
const hn = hotMeter(now, (next) => {
  for (let i = 0; i < BATCH; i++) now.set(HOT, next());
});
console.log(`hot meter, ${CAPACITY} other keys cached: before ${hb.toFixed(0)} ns per Allow, now ${hn.toFixed(0)} ns (${(hb / hn).toFixed(0)}×)`);

function streaming(cache: Settable): number {
  for (const k of others) cache.set(k, 1);
  let n = 0;
  return perOp(() => cache.set(`customers\u0000new_${n++}`, n), 1, 100_000);
}

const sb = streaming(fifoCache(CAPACITY));
const sn = streaming(createRowCache(CAPACITY));
console.log(`a new key into a full cache: before ${sb.toFixed(0)} ns, now ${sn.toFixed(0)} ns (${(sb / sn).toFixed(0)}×)`);

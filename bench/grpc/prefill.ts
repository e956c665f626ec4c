/**
 * Fills a data dir with N customers (`cus_<i>`, on the default plan, one alt id each) and one
 * `requests` meter each, in commits of 5,000 customers (each one LMDB transaction), through the
 * store's own commit path so the rows are exactly what the sidecar would have written.
 *
 *   node build/bench/grpc/prefill.js DIR N
 */
import { NO_HOLD_SUMMARY, type Customer, type Meter, type Write } from "../../src/engine/index.js";
import { toNanos } from "../../src/policy/index.js";
import { createLmdbStore } from "../../src/store/index.js";

const CHUNK = 5_000;

export function customerId(i: number): string {
  return `cus_${i}`;
}

async function main(): Promise<void> {
  const [dir, nText] = process.argv.slice(2);
  if (dir === undefined || nText === undefined) throw new Error("usage: prefill.js DIR N");
  const n = Number(nText);
  const now = Date.now();
  const d = new Date(now);
  const periodStart = Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1);
  const store = createLmdbStore({ path: dir });
  const t0 = performance.now();
  for (let start = 0; start < n; start += CHUNK) {
    const writes: Write[] = [];
    for (let i = start; i < Math.min(n, start + CHUNK); i++) {
      const id = customerId(i);
      const customer: Customer = { id, plan: "", type: "user", refs: [], altIds: [`sk_${id}`], metadata: {}, createdAt: now, updatedAt: now };
      const meter: Meter = { owner: id, entitlement: "requests", credit: "request", periodStart, value: toNanos(i % 1000), overhead: 0n, billedOverage: 0n, resetRule: "monthly:1", judgedAt: periodStart, holdSummary: NO_HOLD_SUMMARY, thresholdsReached: [] };
      writes.push({ kind: "customer-put", customer, previous: undefined }, { kind: "meter-put", meter });
    }
    await store.commit(writes, []);
  }
  await store.close();
  process.stdout.write(JSON.stringify({ customers: n, ms: Math.round(performance.now() - t0) }) + "\n");
}

if (process.argv[1]?.endsWith("prefill.js")) await main();

/**
 * Microbenchmark: the cost of one pure `allow` (issue 2: target < 5 µs median) on a policy of
 * 20 plans × 20 entitlements with 100k customers in the memory store. Only the pure decision is
 * timed; each outcome is then committed (untimed) so state evolves as in production.
 *
 *   npx tsc -p tsconfig.tools.json && node build/bench/engine-allow.js
 */
import { DEFAULT_ENGINE_OPTIONS, allow, type EngineContext } from "../src/engine/index.js";
import type { CompiledCredit, CompiledEntitlement, CompiledPlan, CompiledPolicy, ResetRule } from "../src/policy/index.js";
import { toNanos } from "../src/policy/index.js";
import { createMemoryStore } from "../src/store/memory-store.js";

const PLANS = 20;
const ENTITLEMENTS = 20;
const CUSTOMERS = 100_000;
const WARMUP = 50_000;
const ITERATIONS = 200_000;

const token: CompiledCredit = { name: "token", label: "Token", unit: "token", stofUnits: undefined, unitKind: "count", price: 20_000_000_000_000n, overheadCost: 8_000_000_000_000n };
const monthly: ResetRule = { kind: "calendar", schedule: { kind: "monthly", day: 1 }, text: "monthly:1" };
const modes = ["hard", "soft", "observe"] as const;

const plans = new Map<string, CompiledPlan>();
const names = new Set<string>();
for (let p = 0; p < PLANS; p++) {
  const entitlements = new Map<string, CompiledEntitlement>();
  for (let e = 0; e < ENTITLEMENTS; e++) {
    const name = `ent_${e}`;
    names.add(name);
    entitlements.set(name, {
      name,
      description: "",
      scope: undefined,
      limit: {
        credit: token,
        mode: modes[e % modes.length] ?? "hard",
        value: toNanos(1e12),
        increment: toNanos(1),
        minimum: undefined,
        hardTrailing: false,
        reset: monthly,
        thresholds: [],
      },
    });
  }
  plans.set(`plan_${p}`, { name: `plan_${p}`, label: `Plan ${p}`, isDefault: p === 0, entitlements });
}
const policy: CompiledPolicy = { version: "bench", credits: new Map([["token", token]]), plans, defaultPlan: "plan_0", entitlementNames: names };

const store = createMemoryStore();
const now0 = Date.UTC(2026, 0, 15);
const customers: string[] = [];
for (let i = 0; i < CUSTOMERS; i++) {
  const id = `cus_${i.toString(36).padStart(6, "0")}`;
  customers.push(id);
  void store.commit(
    [{ kind: "customer-put", customer: { id, plan: `plan_${i % PLANS}`, type: "user", refs: [], altIds: [`sk_${id}`], metadata: {}, createdAt: now0, updatedAt: now0 }, previous: undefined }],
    [],
  );
}

let seed = 42;
const nextRandom = (): number => (seed = (seed * 1_103_515_245 + 12_345) % 2_147_483_648);
let ids = 0;
const ctx = (now: number): EngineContext => ({ policy, state: store, now, newId: () => `r${++ids}`, options: DEFAULT_ENGINE_OPTIONS });

function run(iterations: number, samples: number[] | undefined): void {
  for (let i = 0; i < iterations; i++) {
    const customerId = customers[nextRandom() % CUSTOMERS] as string;
    const req = { customerId, items: [{ entitlement: `ent_${nextRandom() % ENTITLEMENTS}`, amount: 1 + (nextRandom() % 1000) }], attributes: { model: "gpt" } };
    const c = ctx(now0 + i);
    const t0 = process.hrtime.bigint();
    const out = allow(c, req);
    const t1 = process.hrtime.bigint();
    if (samples !== undefined) samples.push(Number(t1 - t0));
    void store.commit(out.writes, out.events);
  }
}

run(WARMUP, undefined);
const samples: number[] = [];
run(ITERATIONS, samples);
samples.sort((a, b) => a - b);
const at = (q: number): number => (samples[Math.min(samples.length - 1, Math.floor(q * samples.length))] ?? 0) / 1000;
console.log(
  `engine allow (pure), ${PLANS} plans x ${ENTITLEMENTS} entitlements, ${CUSTOMERS} customers, ${ITERATIONS} calls: ` +
    `median ${at(0.5).toFixed(2)} µs, p90 ${at(0.9).toFixed(2)} µs, p99 ${at(0.99).toFixed(2)} µs`,
);

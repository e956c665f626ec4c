/**
 * The metrics module fed by real parts: the engine over a memory store (overages from committed
 * events, idempotent replays), the server's WatchEvents feed and subscriber registry (lag), an
 * LMDB store's stats (and a closed one), and the policy info gauge across versions.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { createEngine, type EngineEvent } from "../../src/engine/index.js";
import { createMetrics } from "../../src/metrics/index.js";
import { followEventLog } from "../../src/server/follow-event-log.js";
import { createWatchRegistry } from "../../src/server/watch-registry.js";
import { createLmdbStore } from "../../src/store/index.js";
import { createMemoryStore } from "../../src/store/memory-store.js";
import { examplePolicy } from "../server/harness.js";

function sample(text: string, series: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

/** A plain event (not a meter event): what the lag tests need, nothing more. */
const removed = (i: number): EngineEvent => ({
  type: "customer-removed",
  time: i,
  customer: { id: `c${i}`, plan: "", type: "user", refs: [], altIds: [], metadata: {}, createdAt: i, updatedAt: i },
});

const body = async (m: ReturnType<typeof createMetrics>): Promise<string> => (await m.render()).body;

describe("createMetrics", () => {
  it("counts every ended call in its own series, exactly", async () => {
    const metrics = createMetrics({ defaultMetrics: false });
    const call = { rpc: "Allow", protocol: "grpc", outcome: "allowed", reason: "OK", code: "ok", seconds: 0.0004 } as const;
    for (let i = 0; i < 3; i++) metrics.callEnded(call);
    metrics.callEnded({ ...call, outcome: "denied", reason: "HARD_LIMIT", seconds: 0.002 });
    metrics.callEnded({ ...call, protocol: "connect" });
    metrics.callEnded({ ...call, rpc: "GetMeters", outcome: "ok", reason: undefined });
    const text = await body(metrics);
    expect(sample(text, 'limitr_rpc_duration_seconds_count{rpc="Allow",outcome="allowed"}')).toBe(4);
    expect(sample(text, 'limitr_rpc_duration_seconds_bucket{le="0.0005",rpc="Allow",outcome="allowed"}')).toBe(4);
    expect(sample(text, 'limitr_rpc_duration_seconds_count{rpc="Allow",outcome="denied"}')).toBe(1);
    expect(sample(text, 'limitr_rpc_duration_seconds_bucket{le="0.001",rpc="Allow",outcome="denied"}')).toBe(0);
    expect(sample(text, 'limitr_rpc_duration_seconds_count{rpc="GetMeters",outcome="ok"}')).toBe(1);
    expect(sample(text, 'limitr_rpc_requests_total{rpc="Allow",protocol="grpc",code="ok"}')).toBe(4);
    expect(sample(text, 'limitr_rpc_requests_total{rpc="Allow",protocol="connect",code="ok"}')).toBe(1);
    expect(sample(text, 'limitr_decisions_total{rpc="Allow",reason="OK"}')).toBe(4);
    expect(sample(text, 'limitr_decisions_total{rpc="Allow",reason="HARD_LIMIT"}')).toBe(1);
    expect(text).not.toMatch(/limitr_decisions_total\{rpc="GetMeters"/);
  });

  it("counts overages and their price from committed meter-overage events only, and idempotent replays", async () => {
    const store = createMemoryStore();
    const metrics = createMetrics({ defaultMetrics: false });
    const unfollow = metrics.followEvents(store);
    const policy = examplePolicy("combined.yaml"); // pro: gpt_tokens soft 50_000 at $0.00002/token
    const engine = createEngine({ store, policy: () => policy, clock: () => 1_700_000_000_000, newId: () => "r", onIdempotentReplay: (op) => metrics.idempotentReplay(op) });
    const pro = { plan: "pro" };
    await engine.allow({ customerId: "p", hint: pro, items: [{ entitlement: "gpt_tokens", amount: 50_010 }], idempotencyKey: "a" });
    await engine.allow({ customerId: "p", hint: pro, items: [{ entitlement: "gpt_tokens", amount: 50_010 }], idempotencyKey: "a" }); // replay
    await engine.record({ customerId: "p", hint: pro, items: [{ entitlement: "gpt_tokens", amount: 5 }] });
    await engine.check({ customerId: "p", hint: pro, items: [{ entitlement: "gpt_tokens", amount: 1000 }] }); // emits nothing
    await engine.allow({ customerId: "f", items: [{ entitlement: "gpt_tokens", amount: 1_000_000 }] }); // free: hard denial, no overage

    const text = await body(metrics);
    expect(sample(text, 'limitr_overages_total{entitlement="gpt_tokens"}')).toBe(2);
    expect(sample(text, 'limitr_overage_amount_total{entitlement="gpt_tokens",unit="token"}')).toBe(15);
    expect(sample(text, 'limitr_overage_price_usd_total{entitlement="gpt_tokens"}')).toBeCloseTo(15 * 0.00002, 12);
    expect(sample(text, 'limitr_idempotent_replays_total{operation="allow"}')).toBe(1);
    // The others exist at 0 before their first replay (a dashboard's rate() needs the series).
    for (const op of ["record", "reserve", "settle"]) expect(sample(text, `limitr_idempotent_replays_total{operation="${op}"}`)).toBe(0);
    expect(text).not.toMatch(/customer|"p"|"f"/);

    unfollow();
    await engine.record({ customerId: "p", hint: pro, items: [{ entitlement: "gpt_tokens", amount: 5 }] });
    expect(sample(await body(metrics), 'limitr_overages_total{entitlement="gpt_tokens"}')).toBe(2);
  });

  it("counts hint alt ids skipped because another customer has them, from 0", async () => {
    const metrics = createMetrics({ defaultMetrics: false });
    const policy = examplePolicy("combined.yaml");
    const engine = createEngine({ store: createMemoryStore(), policy: () => policy, clock: () => 1_700_000_000_000, newId: () => "r", onHintAltIdConflict: () => metrics.hintAltIdConflict() });
    expect(sample(await body(metrics), "limitr_hint_alt_id_conflicts_total")).toBe(0);
    await engine.record({ customerId: "sk_1", items: [{ entitlement: "gpt_tokens", amount: 5 }] });
    await engine.record({ customerId: "alice", hint: { altIds: ["sk_1"] }, items: [{ entitlement: "gpt_tokens", amount: 5 }] });
    expect(sample(await body(metrics), "limitr_hint_alt_id_conflicts_total")).toBe(1);
  });

  it("keeps exactly one policy_info series, the live version", async () => {
    const metrics = createMetrics({ defaultMetrics: false });
    expect(await body(metrics)).not.toMatch(/^limitr_policy_info\{/m);
    metrics.policyApplied("v-one");
    metrics.policyRejected();
    metrics.policyApplied("v-two");
    const text = await body(metrics);
    expect(text.match(/^limitr_policy_info\{.*$/gm)).toEqual(['limitr_policy_info{version="v-two"} 1']);
    expect(sample(text, 'limitr_policy_reloads_total{result="applied"}')).toBe(2);
    expect(sample(text, 'limitr_policy_reloads_total{result="rejected"}')).toBe(1);
  });

  it("reports WatchEvents subscribers and their lag from the feed's own cursor", async () => {
    const store = createMemoryStore();
    for (let i = 1; i <= 3; i++) await store.commit([], [removed(i)]);
    const registry = createWatchRegistry();
    const metrics = createMetrics({ defaultMetrics: false, watchStats: () => registry.stats(store.lastSequence()) });
    const ctl = new AbortController();
    const feed = followEventLog(store, { fromSequence: 1, matches: () => true, maxBuffered: 16, signal: ctl.signal, track: registry.add });

    expect(sample(await body(metrics), "limitr_watch_subscribers")).toBe(0);
    await feed.next(); // got past event 1 of 3
    let text = await body(metrics);
    expect(sample(text, "limitr_watch_subscribers")).toBe(1);
    expect(sample(text, "limitr_watch_max_lag_events")).toBe(2);
    expect(sample(text, "limitr_watch_lag_events")).toBe(2);

    await store.commit([], [removed(4)]);
    expect(sample(await body(metrics), "limitr_watch_max_lag_events")).toBe(3);
    for (let i = 0; i < 3; i++) await feed.next();
    expect(sample(await body(metrics), "limitr_watch_max_lag_events")).toBe(0);

    ctl.abort();
    expect((await feed.next()).done).toBe(true);
    text = await body(metrics);
    expect(sample(text, "limitr_watch_subscribers")).toBe(0);
  });

  it("reads LMDB stats at scrape, and a closed store costs a counted miss, not a failed scrape", async () => {
    const dir = mkdtempSync(join(tmpdir(), "limitr-metrics-"));
    try {
      const store = createLmdbStore({ path: dir });
      const metrics = createMetrics({ storeStats: () => store.stats() });
      await store.commit([], [removed(1)]);
      let text = await body(metrics);
      expect(sample(text, "limitr_event_log_events")).toBe(1);
      expect(sample(text, "limitr_event_log_last_sequence")).toBe(1);
      expect(sample(text, "limitr_store_file_bytes")).toBeGreaterThan(0);
      expect(sample(text, "limitr_store_map_bytes")).toBeGreaterThan(0);
      expect(sample(text, "limitr_store_map_usage_ratio")).toBeGreaterThan(0);
      // One event, so the events table holds the only data page; its share adds up to the total.
      expect(sample(text, 'limitr_store_table_bytes{table="events"}')).toBe(4096);
      expect(sample(text, 'limitr_store_table_bytes{table="idempotency"}')).toBe(0);
      expect(sample(text, "limitr_store_data_bytes")).toBe(4096);
      expect(text).toMatch(/^process_resident_memory_bytes \d/m);
      await store.close();
      text = await body(metrics);
      expect(sample(text, 'limitr_metrics_scrape_errors_total{source="store"}')).toBe(1);
      expect(sample(text, "limitr_event_log_events")).toBe(1);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("samples the event-loop delay every 100 ms, not every 10 ms (an idle sidecar is not woken 100 times a second)", async () => {
    const metrics = createMetrics();
    await metrics.render(); // prom-client resets the delay histogram on every scrape
    await new Promise((r) => setTimeout(r, 450));
    const text = (await metrics.render()).body;
    // Each sample is the time between two ticks of the sampling timer: at least its interval.
    expect(sample(text, "nodejs_eventloop_lag_min_seconds")).toBeGreaterThanOrEqual(0.09);
    expect(sample(text, "nodejs_eventloop_lag_p99_seconds")).toBeLessThan(1);
  });
});

/**
 * The bench's reading of a sidecar's garbage collection: the sidecar's own metrics registry (with
 * prom-client's default metrics, as served on /metrics) after real scavenges in this process.
 */
import { describe, expect, it } from "vitest";
import { gcRound, parseGcTotals, parseMaxWatchLag } from "../../bench/grpc/gc-metrics.js";
import { createMetrics } from "../../src/metrics/index.js";

/** Young garbage enough for a few scavenges, then a turn for the GC observer to report them. */
async function scavenge(): Promise<void> {
  let keep = 0;
  for (let i = 0; i < 200_000; i++) keep += new Array(64).fill(i).length;
  expect(keep).toBe(200_000 * 64);
  await new Promise((resolve) => setTimeout(resolve, 50));
}

describe("gc metrics", () => {
  it("reads scavenges and their time from the sidecar's /metrics text, and a round as the difference", async () => {
    const metrics = createMetrics();
    await scavenge();
    const before = parseGcTotals((await metrics.render()).body);
    expect(before.scavenges).toBeGreaterThan(0);
    expect(before.scavengeSeconds).toBeGreaterThan(0);
    await scavenge();
    const after = parseGcTotals((await metrics.render()).body);
    const round = gcRound(before, after);
    expect(round.scavenges).toBe(after.scavenges - before.scavenges);
    expect(round.scavenges).toBeGreaterThan(0);
    expect(round.meanScavengeMs).toBeCloseTo(((after.scavengeSeconds - before.scavengeSeconds) * 1000) / round.scavenges);
    expect(round.markCompacts).toBeGreaterThanOrEqual(0);
  });

  it("counts incremental and major collections as mark-compacts, and nothing missing as zero", () => {
    const text = [
      'nodejs_gc_duration_seconds_sum{kind="minor"} 0.5',
      'nodejs_gc_duration_seconds_count{kind="minor"} 200',
      'nodejs_gc_duration_seconds_count{kind="incremental"} 3',
      'nodejs_gc_duration_seconds_count{kind="major"} 1',
    ].join("\n");
    expect(parseGcTotals(text)).toEqual({ scavenges: 200, scavengeSeconds: 0.5, markCompacts: 4 });
    const later = text.replace('"minor"} 200', '"minor"} 210').replace("0.5", "0.54").replace('"incremental"} 3', '"incremental"} 5');
    const round = gcRound(parseGcTotals(text), parseGcTotals(later));
    expect(round).toMatchObject({ scavenges: 10, markCompacts: 2 });
    expect(round.meanScavengeMs).toBeCloseTo(4);
    expect(parseGcTotals("")).toEqual({ scavenges: 0, scavengeSeconds: 0, markCompacts: 0 });
    expect(gcRound(parseGcTotals(""), parseGcTotals(""))).toEqual({ scavenges: 0, meanScavengeMs: 0, markCompacts: 0 });
  });

  it("reads the furthest WatchEvents feed's lag from the same page, and no feeds as zero", async () => {
    let stats = { subscribers: 3, maxLagEvents: 4096, totalLagEvents: 5000 };
    const metrics = createMetrics({ watchStats: () => stats, defaultMetrics: false });
    expect(parseMaxWatchLag((await metrics.render()).body)).toBe(4096);
    stats = { subscribers: 0, maxLagEvents: 0, totalLagEvents: 0 };
    expect(parseMaxWatchLag((await metrics.render()).body)).toBe(0);
    expect(parseMaxWatchLag("")).toBe(0);
  });
});

/**
 * The per-call series render exactly what prom-client's own Counter and Histogram render for the
 * same observations: both are fed the same sequence on registries of their own, and the two
 * expositions (and JSON) are compared whole.
 */
import { Counter, Histogram, Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import { LabelledCounter, LabelledHistogram } from "../../src/metrics/call-series.js";

const BUCKETS = [0.0001, 0.001, 0.5, 1, 5];

/** The text exposition and the JSON (without prom-client's exemplar placeholders, which ours omit). */
async function rendered(registry: Registry): Promise<{ text: string; json: unknown }> {
  const json: unknown = JSON.parse(JSON.stringify(await registry.getMetricsAsJSON(), (k, v: unknown) => (k === "exemplar" ? undefined : v)));
  return { text: await registry.metrics(), json };
}

describe("LabelledHistogram", () => {
  it("renders prom-client's histogram: cumulative buckets, +Inf, sum and count, label order and escaping", async () => {
    const ours = new Registry();
    const theirs = new Registry();
    const mine = new LabelledHistogram({ name: "h_seconds", help: "a histogram", registry: ours }, ["rpc", "outcome"], BUCKETS);
    const reference = new Histogram({ name: "h_seconds", help: "a histogram", labelNames: ["rpc", "outcome"], buckets: BUCKETS, registers: [theirs] });
    const observations: [string, string, number][] = [
      ["Allow", "allowed", 0],
      ["Allow", "allowed", 0.0001], // exactly on a bound: counts in that bucket
      ["Allow", "allowed", 0.00010001],
      ["Check", "ok", 0.7],
      ["Allow", "denied", 5],
      ["Allow", "allowed", 6], // above the last bound: only +Inf
      ['we"ird\\rpc', "line\nbreak", 0.25],
      ["Check", "ok", 1e9],
    ];
    for (const [rpc, outcome, v] of observations) {
      mine.observe(mine.series(rpc, outcome), v);
      reference.observe({ rpc, outcome }, v);
    }
    const got = await rendered(ours);
    expect(got).toEqual(await rendered(theirs));
    expect(got.text).toContain('h_seconds_bucket{le="0.0001",rpc="Allow",outcome="allowed"} 2\n');
    expect(got.text).toContain('h_seconds_bucket{le="+Inf",rpc="Allow",outcome="allowed"} 4\n');
    expect(got.text).toContain('h_seconds_count{rpc="Check",outcome="ok"} 2\n');
  });

  it("keeps one series per label pair and forgets them all on the registry's reset", async () => {
    const registry = new Registry();
    const h = new LabelledHistogram({ name: "h", help: "h", registry }, ["a", "b"], BUCKETS);
    expect(h.series("x", "y")).toBe(h.series("x", "y"));
    expect(h.series("x", "y")).not.toBe(h.series("y", "x"));
    h.observe(h.series("x", "y"), 0.1);
    registry.resetMetrics();
    expect(await registry.metrics()).not.toMatch(/^h_/m);
    const fresh = h.series("x", "y");
    expect([fresh.count, fresh.sum]).toEqual([0, 0]);
  });
});

describe("LabelledCounter", () => {
  it("renders prom-client's counter, with two labels and with three", async () => {
    const ours = new Registry();
    const theirs = new Registry();
    const two = new LabelledCounter({ name: "two_total", help: "2", registry: ours }, ["rpc", "reason"]);
    const three = new LabelledCounter({ name: "three_total", help: "3", registry: ours }, ["rpc", "protocol", "code"]);
    const ref2 = new Counter({ name: "two_total", help: "2", labelNames: ["rpc", "reason"], registers: [theirs] });
    const ref3 = new Counter({ name: "three_total", help: "3", labelNames: ["rpc", "protocol", "code"], registers: [theirs] });
    const calls: [string, string, string][] = [
      ["Allow", "grpc", "ok"],
      ["Allow", "connect", "ok"],
      ["Allow", "grpc", "ok"],
      ["Check", "grpc", "invalid_argument"],
      ["Allow", "grpc", 'q"uote'],
    ];
    for (const [rpc, protocol, code] of calls) {
      three.series(rpc, protocol, code).value++;
      ref3.inc({ rpc, protocol, code });
      two.series(rpc, code).value++;
      ref2.inc({ rpc, reason: code });
    }
    const got = await rendered(ours);
    expect(got).toEqual(await rendered(theirs));
    expect(got.text).toContain('three_total{rpc="Allow",protocol="grpc",code="ok"} 2\n');
    expect(got.text).toContain('two_total{rpc="Allow",reason="ok"} 3\n');
  });

  it("refuses a second metric of the same name, as prom-client does", () => {
    const registry = new Registry();
    new LabelledCounter({ name: "dup_total", help: "d", registry }, ["a", "b"]);
    expect(() => new Counter({ name: "dup_total", help: "d", registers: [registry] })).toThrow(/already been registered/);
  });
});

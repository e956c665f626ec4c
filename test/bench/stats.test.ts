import { describe, expect, it } from "vitest";
import { bootstrapMedian, median, paired, roundOrder } from "../../bench/grpc/stats.js";

describe("median", () => {
  it("takes the middle value, or the mean of the middle two, whatever the order", () => {
    expect(median([5, 1, 3])).toBe(3);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(median([])).toBeNaN();
  });
});

describe("paired", () => {
  it("summarizes the difference b − a round by round, not the difference of medians", () => {
    // B is cheaper in four rounds of five although its median is the higher one.
    const a = [10, 20, 30, 40, 50];
    const b = [9, 19, 35, 39, 49];
    expect(median(b)).toBeGreaterThan(median(a));
    expect(paired(a, b)).toMatchObject({ median: -1, min: -1, max: 5, below: 4, rounds: 5 });
  });

  it("takes another function and pivot, e.g. a ratio against 1", () => {
    const p = paired([100, 100, 100], [90, 110, 120], { f: (x, y) => y / x, pivot: 1 });
    expect(p.median).toBeCloseTo(1.1);
    expect(p.below).toBe(1);
  });

  it("resolves a difference only when its interval leaves out the pivot", () => {
    const base = Array.from({ length: 40 }, (_, i) => 50 + (i % 7));
    // The same cost plus noise of ±10 either way: no difference.
    const noisy = base.map((x, i) => x + (i % 2 ? 10 : -10) * ((i % 5) / 4));
    const same = paired(base, noisy);
    expect(same.low).toBeLessThan(0);
    expect(same.high).toBeGreaterThan(0);
    expect(same.resolved).toBe(false);
    // 2 cheaper in every round but a few, through the same noise: resolved.
    const cheaper = paired(base, base.map((x, i) => x - 2 + (i % 8 === 0 ? 15 : 0)));
    expect(cheaper.median).toBe(-2);
    expect(cheaper.high).toBeLessThan(0);
    expect(cheaper.resolved).toBe(true);
  });

  it("draws whole blocks when told which round ran in which: the processes' luck widens the interval", () => {
    // Six blocks of six rounds; within a block the rounds agree, between blocks they do not.
    const a = Array.from({ length: 36 }, () => 50);
    const offsets = [-4, 3, -3, 4, -2, 2];
    const b = a.map((x, i) => x + (offsets[Math.floor(i / 6)] as number) + ((i % 3) - 1) * 0.1);
    const blocks = a.map((_, i) => Math.floor(i / 6));
    const byRound = paired(a, b);
    const byBlock = paired(a, b, { blocks });
    expect(byBlock.median).toBe(byRound.median);
    expect(byBlock.high - byBlock.low).toBeGreaterThan(byRound.high - byRound.low);
    expect(byBlock.resolved).toBe(false);
    expect(() => paired(a, b, { blocks: [0, 1] })).toThrow(/2 block ids for 36 values/);
  });

  it("refuses rounds that do not pair up", () => {
    expect(() => paired([1, 2], [1])).toThrow(/2 against 1/);
  });
});

describe("bootstrapMedian", () => {
  it("brackets the median, narrows with more rounds, and repeats itself (seeded)", () => {
    const spread = (n: number): number[] => Array.from({ length: n }, (_, i) => ((i * 37) % 101) - 50);
    const [lo12, hi12] = bootstrapMedian(spread(12));
    const [lo120, hi120] = bootstrapMedian(spread(120));
    expect(lo12).toBeLessThanOrEqual(median(spread(12)));
    expect(hi12).toBeGreaterThanOrEqual(median(spread(12)));
    expect(hi120 - lo120).toBeLessThan((hi12 - lo12) / 2);
    expect(bootstrapMedian(spread(12))).toEqual([lo12, hi12]);
    expect(bootstrapMedian([])).toEqual([NaN, NaN]);
    expect(bootstrapMedian([3, 3, 3, 3, 3])).toEqual([3, 3]);
    // Fewer than five blocks is no interval at all, however many rounds they hold.
    expect(bootstrapMedian([1, 2, 3, 4], [0, 0, 0, 0])).toEqual([NaN, NaN]);
    expect(bootstrapMedian([1, 2, 3, 4, 5, 6, 7, 8], [0, 0, 1, 1, 2, 2, 3, 3])).toEqual([NaN, NaN]);
    expect(bootstrapMedian([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]).every(Number.isFinite)).toBe(true);
    expect(paired([1, 2, 3, 4], [0, 0, 0, 0], { blocks: [7, 7, 7, 7] }).resolved).toBe(false);
  });
});

describe("roundOrder", () => {
  const items = ["empty", "a", "b"];
  const cycle = Array.from({ length: 6 }, (_, i) => roundOrder(items, i));

  it("puts every item in every position equally often over 2n rounds", () => {
    for (const item of items) {
      const positions = cycle.map((r) => r.indexOf(item)).sort();
      expect(positions).toEqual([0, 0, 1, 1, 2, 2]);
    }
    expect(roundOrder(items, 6)).toEqual(cycle[0]);
    expect(cycle[0]).toEqual(items);
  });

  it("runs every item right after every other one equally often (rotation alone does not)", () => {
    const follows = new Map<string, number>();
    for (const r of cycle) for (let j = 1; j < r.length; j++) follows.set(`${r[j - 1]}→${r[j]}`, (follows.get(`${r[j - 1]}→${r[j]}`) ?? 0) + 1);
    expect(follows.size).toBe(6);
    expect(new Set(follows.values())).toEqual(new Set([2]));
  });

  it("alternates two items", () => {
    expect([0, 1, 2, 3].map((i) => roundOrder(["empty", "allow"], i))).toEqual([
      ["empty", "allow"],
      ["allow", "empty"],
      ["allow", "empty"],
      ["empty", "allow"],
    ]);
  });
});

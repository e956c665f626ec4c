/**
 * The few statistics the benches report. Medians, never means of noisy rounds; and for two builds
 * measured side by side, the difference round by round, since on a shared machine the spell a
 * round ran in moves every server in it more than most changes move one.
 */

export function mean(xs: readonly number[]): number {
  return xs.reduce((a, x) => a + x, 0) / xs.length;
}

/** NaN for no values. */
export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? (s[m] ?? NaN) : ((s[m - 1] ?? NaN) + (s[m] ?? NaN)) / 2;
}

/** `f(a[i], b[i])` over rounds measured together: its median, its range, and how many fell below 0 (or 1). */
export interface Paired {
  readonly median: number;
  /** 95% bootstrap interval of the median: where it would land in most repeats of the same rounds. */
  readonly low: number;
  readonly high: number;
  /** Whether that interval leaves out the pivot: a difference this many rounds can tell apart from none. */
  readonly resolved: boolean;
  readonly min: number;
  readonly max: number;
  /** Rounds whose value is below `pivot`: for a difference B − A of a cost, the rounds B won. */
  readonly below: number;
  readonly rounds: number;
}

export interface PairedOptions {
  /** What to take of each pair of rounds; default the difference b − a. */
  readonly f?: (a: number, b: number) => number;
  /** 0 for differences, 1 for ratios: what "no difference" is. */
  readonly pivot?: number;
  /**
   * The block (set of processes) each round ran in. Rounds of one block share the processes'
   * luck (JIT, heap layout), which more rounds do not average out; the interval then draws whole
   * blocks.
   */
  readonly blocks?: readonly number[];
}

/** `f(a[i], b[i])` per round, summarized. */
export function paired(a: readonly number[], b: readonly number[], options: PairedOptions = {}): Paired {
  const { f = (x: number, y: number) => y - x, pivot = 0, blocks } = options;
  if (a.length !== b.length) throw new Error(`paired rounds: ${a.length} against ${b.length}`);
  const values = a.map((x, i) => f(x, b[i] as number));
  const [low, high] = bootstrapMedian(values, blocks);
  return {
    median: median(values),
    low,
    high,
    resolved: low > pivot || high < pivot,
    min: Math.min(...values),
    max: Math.max(...values),
    below: values.filter((v) => v < pivot).length,
    rounds: values.length,
  };
}

/**
 * The order of `items` in round `round`, balanced over every `2 × items.length` rounds: each
 * item runs in every position equally often, and right after each other item equally often
 * (rotations, then the same rotations reversed: a Williams design). Rotation alone balances the
 * positions but not what runs just before: with three servers, one build always follows the
 * empty server. Whether that costs a throughput run anything was not established (an A/A that
 * looked like it is as well explained by the processes' own luck); for lone calls a position
 * effect was seen (docs/performance.md, "A lone Allow"). Balancing costs nothing.
 */
export function roundOrder<T>(items: readonly T[], round: number): T[] {
  const n = items.length;
  const r = ((round % (2 * n)) + 2 * n) % (2 * n);
  const rotation = items.map((_, j) => items[(r + j) % n] as T);
  return r < n ? rotation : rotation.reverse();
}

/** Fewest rounds, or blocks, that `bootstrapMedian` puts an interval on. */
export const MIN_UNITS = 5;

/**
 * A percentile-bootstrap interval for the median of `values`: the median of `resamples` draws of
 * as many values with replacement, its (1 − level)/2 and (1 + level)/2 quantiles. With `blocks`
 * (one id per value), each draw takes as many whole blocks with replacement instead. Seeded, so
 * the same rounds always give the same interval; NaN from fewer than 5 units. Rounds on a
 * shared host swing by ±50% (a spell of the host lands on one run and not its pair), so a paired
 * median alone says little; this says how far it would move over another set of the same rounds.
 */
export function bootstrapMedian(values: readonly number[], blocks?: readonly number[], level = 0.95, resamples = 4000, seed = 1): [number, number] {
  if (values.length === 0) return [NaN, NaN];
  if (blocks !== undefined && blocks.length !== values.length) throw new Error(`bootstrap: ${blocks.length} block ids for ${values.length} values`);
  const groups = new Map<number, number[]>();
  values.forEach((v, i) => {
    const id = blocks === undefined ? i : (blocks[i] as number);
    const group = groups.get(id);
    if (group) group.push(v);
    else groups.set(id, [v]);
  });
  const units = [...groups.values()];
  // Resampling a handful of units gives an interval that claims what it cannot know (one unit
  // resampled is itself: width zero).
  if (units.length < MIN_UNITS) return [NaN, NaN];
  const random = mulberry32(seed);
  const medians = new Float64Array(resamples);
  const draw: number[] = [];
  for (let r = 0; r < resamples; r++) {
    draw.length = 0;
    for (let i = 0; i < units.length; i++) draw.push(...(units[Math.floor(random() * units.length)] as number[]));
    medians[r] = median(draw);
  }
  medians.sort();
  const at = (q: number): number => medians[Math.min(resamples - 1, Math.max(0, Math.round(q * (resamples - 1))))] as number;
  return [at((1 - level) / 2), at((1 + level) / 2)];
}

/** A small seeded PRNG (mulberry32): uniform in [0, 1). */
function mulberry32(seed: number): () => number {
  let t = seed >>> 0;
  return () => {
    t = (t + 0x6d2b79f5) >>> 0;
    let x = Math.imul(t ^ (t >>> 15), 1 | t);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

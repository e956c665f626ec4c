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
  readonly min: number;
  readonly max: number;
  /** Rounds whose value is below `pivot`: for a difference B − A of a cost, the rounds B won. */
  readonly below: number;
  readonly rounds: number;
}

/** Per round `f(a[i], b[i])` (default the difference b − a), summarized; `pivot` is 0 for differences, 1 for ratios. */
export function paired(
  a: readonly number[],
  b: readonly number[],
  f: (a: number, b: number) => number = (x, y) => y - x,
  pivot = 0,
): Paired {
  if (a.length !== b.length) throw new Error(`paired rounds: ${a.length} against ${b.length}`);
  const values = a.map((x, i) => f(x, b[i] as number));
  return {
    median: median(values),
    min: Math.min(...values),
    max: Math.max(...values),
    below: values.filter((v) => v < pivot).length,
    rounds: values.length,
  };
}

/**
 * The order of `items` in round `round`: each round starts one later, so over `items.length`
 * rounds each goes first, second, … once. A fixed order favours or penalizes a position: the
 * server measured right after the empty one came out ~20 µs slower per lone call, whichever
 * build it was (docs/performance.md, "A lone Allow").
 */
export function roundOrder<T>(items: readonly T[], round: number): T[] {
  const n = items.length;
  return items.map((_, j) => items[(((round + j) % n) + n) % n] as T);
}

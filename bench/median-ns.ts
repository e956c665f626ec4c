/**
 * The timing loop of the micro-benchmarks: `f` is run N times as a warm-up, then in 7 rounds of N;
 * returns the median round's ns per call. `size` reads something from each result so the work
 * cannot be optimised away.
 */
const ROUNDS = 7;
const N = 100_000;
let sink = 0;

export function medianNs<T>(f: () => T, size: (result: T) => number): number {
  for (let i = 0; i < N; i++) sink += size(f());
  const rounds: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < N; i++) sink += size(f());
    rounds.push(Number(process.hrtime.bigint() - t0) / N);
  }
  return rounds.sort((a, b) => a - b)[ROUNDS >> 1] ?? NaN;
}

/** Keeps the results' sizes observable (prints nothing unless they were all zero). */
export function keepSink(): void {
  if (sink === 0) console.log("");
}

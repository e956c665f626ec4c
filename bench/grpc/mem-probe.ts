/**
 * Preloaded into the sidecar by the bench (`node --expose-gc --import .../mem-probe.js`): on
 * SIGUSR2 it collects garbage and prints one JSON line `{"msg":"bench-memory",heapUsed,rss,...}`
 * on stderr, so the bench can compare the heap of a sidecar on a 1M-customer store with one on
 * an empty store. Not part of the product.
 */
process.on("SIGUSR2", () => {
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  const m = process.memoryUsage();
  process.stderr.write(
    JSON.stringify({ msg: "bench-memory", heapUsed: m.heapUsed, heapTotal: m.heapTotal, rss: m.rss, external: m.external, arrayBuffers: m.arrayBuffers }) + "\n",
  );
});

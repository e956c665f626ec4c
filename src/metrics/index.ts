/**
 * Metrics: the sidecar's Prometheus metrics (prom-client) with bounded labels only. The
 * composition root feeds it (call observer, idempotency observer, policy watcher, event log,
 * scrape-time store and subscriber stats); the HTTP port serves `render()` at `/metrics`.
 */

/** Creates the metrics of one process on their own registry (see `Metrics` for how to feed it). */
export { createMetrics, type Metrics, type MetricsSources, type ObservedCall, type SubscriberStats } from "./create-metrics.js";

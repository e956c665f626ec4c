/**
 * The sidecar's Prometheus metrics (prom-client), on a registry of their own. Every label is
 * bounded: RPC and method names, outcomes, reasons, error codes, and entitlement/unit names
 * from the policy. Never a customer id, a key or a sequence number.
 *
 * Fed three ways: pushed by the transport's call observer, the engine's idempotency observer and
 * the policy watcher; followed from the committed event log (overages, so only what was durably
 * counted is reported); and read at scrape time (store size, event log, WatchEvents subscribers).
 */
import { collectDefaultMetrics, Counter, Gauge, Registry } from "prom-client";
import type { EventLog, ReplayedOperation, StoredEvent } from "../engine/index.js";
import { nanosToNumber } from "../policy/index.js";
import type { StoreStats } from "../store/index.js";
import { LabelledCounter, LabelledHistogram } from "./call-series.js";

/** Every operation an idempotency key can replay; the type makes the list complete. */
const REPLAYED_OPERATIONS = Object.keys({ allow: true, record: true, reserve: true, settle: true } satisfies Record<ReplayedOperation, true>);

/** How a unary call ended (the shape of the server's `CallEnd`). */
export interface ObservedCall {
  readonly rpc: string;
  readonly protocol: string;
  readonly outcome: "allowed" | "denied" | "ok" | "error";
  readonly reason: string | undefined;
  readonly code: string;
  readonly seconds: number;
}

/** The WatchEvents subscribers now (the shape of the server's `WatchStats`). */
export interface SubscriberStats {
  readonly subscribers: number;
  readonly maxLagEvents: number;
  readonly totalLagEvents: number;
}

/** Sources read at scrape time; each is optional (a test may have no store). */
export interface MetricsSources {
  readonly storeStats?: () => StoreStats;
  readonly watchStats?: () => SubscriberStats;
  /** Also export prom-client's process and Node.js metrics (`process_*`, `nodejs_*`). Default true. */
  readonly defaultMetrics?: boolean;
}

/** The metrics of one sidecar process. */
export interface Metrics {
  /** The registry every metric below is registered on. */
  readonly registry: Registry;
  /** A unary call ended (pass this object as the server's `callObserver`). */
  callEnded(call: ObservedCall): void;
  /** An operation answered from its idempotency key (the engine's `onIdempotentReplay`). */
  idempotentReplay(operation: ReplayedOperation): void;
  /** A decision's customer hint named another customer's alt id (the engine's `onHintAltIdConflict`). */
  hintAltIdConflict(): void;
  /**
   * A policy was applied (at start and on every reload), or a rejected edit was rolled back to
   * it: one per policy-applied event. Its version becomes (or stays) the live one.
   */
  policyApplied(version: string): void;
  /** A policy document was rejected (the previous one stays in force). */
  policyRejected(): void;
  /** Counts overages from committed `meter-overage` events of `log`; returns the unsubscribe. */
  followEvents(log: Pick<EventLog, "subscribe">): () => void;
  /** Reads the scrape-time sources and renders the Prometheus text exposition. */
  render(): Promise<{ readonly contentType: string; readonly body: string }>;
}

/**
 * How often prom-client samples the event-loop delay (nodejs_eventloop_lag_*). Its default, 10 ms,
 * is a timer that woke an idle sidecar 100 times a second and cost it ~5.7 ms of CPU per second
 * (bench: "idle"); every pod pays that, busy or not. Sampled every 100 ms, a stall still shows
 * in full when a sample falls into it.
 */
const EVENT_LOOP_SAMPLE_MS = 100;

/** Latency buckets, in seconds: decisions are sub-millisecond to a few ms (one LMDB commit). */
const LATENCY_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

export function createMetrics(sources: MetricsSources = {}): Metrics {
  const registry = new Registry();
  const registers = [registry];
  if (sources.defaultMetrics !== false) {
    collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: EVENT_LOOP_SAMPLE_MS });
  }

  // What every call records: its own series types, without prom-client's per-call label hashing
  // (see call-series.ts); rendered by the registry like the others.
  const rpcDuration = new LabelledHistogram(
    {
      name: "limitr_rpc_duration_seconds",
      help: "Time from a unary RPC's start to its answer, either port. outcome: allowed/denied (decisions), ok, error.",
      registry,
    },
    ["rpc", "outcome"],
    LATENCY_BUCKETS,
  );
  const rpcRequests = new LabelledCounter(
    {
      name: "limitr_rpc_requests_total",
      help: "Unary RPCs answered, by protocol (grpc, connect, grpc-web) and code (ok or the error code).",
      registry,
    },
    ["rpc", "protocol", "code"],
  );
  const decisions = new LabelledCounter(
    { name: "limitr_decisions_total", help: "Decisions answered (Allow, Check, Record, Reserve, Settle) by reason.", registry },
    ["rpc", "reason"],
  );
  const replays = new Counter({
    name: "limitr_idempotent_replays_total",
    help: "Requests answered from their idempotency key (nothing counted again).",
    labelNames: ["operation"] as const,
    registers,
  });
  const overages = new Counter({
    name: "limitr_overages_total",
    help: "Committed meter-overage events, by entitlement.",
    labelNames: ["entitlement"] as const,
    registers,
  });
  const overageAmount = new Counter({
    name: "limitr_overage_amount_total",
    help: "Overage counted (the part above soft limits), in the meter's unit.",
    labelNames: ["entitlement", "unit"] as const,
    registers,
  });
  const overagePrice = new Counter({
    name: "limitr_overage_price_usd_total",
    help: "Overage × the credit's list price, in USD (credits with a price only).",
    labelNames: ["entitlement"] as const,
    registers,
  });
  const reloads = new Counter({
    name: "limitr_policy_reloads_total",
    help: "Policy documents applied or rejected (the start-up load counts as applied).",
    labelNames: ["result"] as const,
    registers,
  });
  const policyInfo = new Gauge({
    name: "limitr_policy_info",
    help: "1, labelled with the version (content hash) of the policy in force.",
    labelNames: ["version"] as const,
    registers,
  });
  // No label naming whose (see the header): the warning logged with it does.
  const hintConflicts = new Counter({
    name: "limitr_hint_alt_id_conflicts_total",
    help: "Alt ids in decision hints skipped because they were taken (the call was decided without them).",
    registers,
  });
  for (const result of ["applied", "rejected"]) reloads.inc({ result }, 0);
  // Present from the start, at 0, like the reloads: `rate()` over a series that appears only with
  // its first replay shows nothing for that first increase, and an absent series alerts as "no data".
  for (const operation of REPLAYED_OPERATIONS) replays.inc({ operation }, 0);

  const gauge = (name: string, help: string): Gauge => new Gauge({ name, help, registers });
  const store = {
    fileBytes: gauge("limitr_store_file_bytes", "Size of the LMDB data file on disk."),
    mapBytes: gauge("limitr_store_map_bytes", "Size of the LMDB memory map (grows on demand)."),
    mapUsedBytes: gauge("limitr_store_map_used_bytes", "Bytes of the LMDB map in use up to its highest page."),
    mapUsage: gauge("limitr_store_map_usage_ratio", "limitr_store_map_used_bytes / limitr_store_map_bytes."),
    dataBytes: gauge("limitr_store_data_bytes", "Bytes of live B-tree pages (what the data size limit applies to)."),
    tableBytes: new Gauge({
      name: "limitr_store_table_bytes",
      help: "limitr_store_data_bytes by table, to see which one grows (events, idempotency, meters, ...).",
      labelNames: ["table"] as const,
      registers,
    }),
    pendingCommits: gauge("limitr_store_pending_commits", "Commits waiting for the next write transaction."),
    events: gauge("limitr_event_log_events", "Events retained in the event log."),
    lastSequence: gauge("limitr_event_log_last_sequence", "Sequence number of the newest committed event."),
  };
  const watch = {
    subscribers: gauge("limitr_watch_subscribers", "Open WatchEvents streams (both ports)."),
    maxLag: gauge("limitr_watch_max_lag_events", "Largest WatchEvents subscriber lag, in events behind the newest committed one."),
    totalLag: gauge("limitr_watch_lag_events", "Sum of the WatchEvents subscribers' lag, in events."),
  };
  const scrapeErrors = new Counter({
    name: "limitr_metrics_scrape_errors_total",
    help: "Scrape-time sources that failed (their gauges keep the previous value).",
    labelNames: ["source"] as const,
    registers,
  });

  const refresh = (): void => {
    if (sources.storeStats) {
      try {
        const s = sources.storeStats();
        store.fileBytes.set(s.fileSizeBytes);
        store.mapBytes.set(s.mapSizeBytes);
        store.mapUsedBytes.set(s.mapUsedBytes);
        store.mapUsage.set(s.mapUsage);
        store.dataBytes.set(s.dataBytes);
        for (const [table, bytes] of Object.entries(s.dataBytesByTable)) store.tableBytes.set({ table }, bytes);
        store.pendingCommits.set(s.pendingCommits);
        store.events.set(s.eventCount);
        store.lastSequence.set(s.lastSequence);
      } catch {
        // The store refuses reads once closed (shutdown): keep the last values, count the miss.
        scrapeErrors.inc({ source: "store" });
      }
    }
    if (sources.watchStats) {
      const w = sources.watchStats();
      watch.subscribers.set(w.subscribers);
      watch.maxLag.set(w.maxLagEvents);
      watch.totalLag.set(w.totalLagEvents);
    }
  };

  const onEvents = (events: readonly StoredEvent[]): void => {
    for (const { event } of events) {
      if (event.type !== "meter-overage") continue;
      overages.inc({ entitlement: event.entitlement });
      overageAmount.inc({ entitlement: event.entitlement, unit: event.unit }, nanosToNumber(event.overage));
      if (event.overagePrice !== undefined) overagePrice.inc({ entitlement: event.entitlement }, nanosToNumber(event.overagePrice));
    }
  };

  return {
    registry,
    callEnded(call) {
      rpcDuration.observe(rpcDuration.series(call.rpc, call.outcome), call.seconds);
      rpcRequests.series(call.rpc, call.protocol, call.code).value++;
      if (call.reason !== undefined) decisions.series(call.rpc, call.reason).value++;
    },
    idempotentReplay(operation) {
      replays.inc({ operation });
    },
    hintAltIdConflict() {
      hintConflicts.inc();
    },
    policyApplied(version) {
      reloads.inc({ result: "applied" });
      policyInfo.reset(); // the previous version's series disappears
      policyInfo.set({ version }, 1);
    },
    policyRejected() {
      reloads.inc({ result: "rejected" });
    },
    followEvents: (log) => log.subscribe(onEvents),
    async render() {
      refresh();
      return { contentType: registry.contentType, body: await registry.metrics() };
    },
  };
}

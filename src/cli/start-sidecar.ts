/**
 * The composition root of `serve`: builds the store, the policy watcher, the engine and the
 * servers from a validated config, in the order that keeps the promises — nothing listens before
 * the store is open and a policy is loaded; health says SERVING only then; shutdown drains calls
 * before the store closes.
 */
import { randomUUID } from "node:crypto";
import { createEngine } from "../engine/index.js";
import { createMetrics } from "../metrics/index.js";
import type { Metrics } from "../metrics/index.js";
import type { EngineEvent } from "../engine/index.js";
import type { CompiledPolicy } from "../policy/index.js";
import { creditUnitChanges, loadPolicy } from "../policy/index.js";
import { createHttpEndpoint, createOperatorEndpoint, createSidecarServer, routeGrpcLogs } from "../server/index.js";
import type { EventPage, EventQuery, HttpEndpoint, PolicyStatus, SidecarServer } from "../server/index.js";
import { createLmdbStore } from "../store/index.js";
import type { LmdbStore } from "../store/index.js";
import { compileWorkerBuilt, createPolicyWatcher, createWorkerCompiler } from "../watch/index.js";
import type { PolicyWatcher, PolicyStatus as WatchStatus } from "../watch/index.js";
import { createAltIdConflictWarner } from "./alt-id-conflicts.js";
import { configWarnings, type ServeConfig } from "./config.js";
import type { Logger } from "./logger.js";
import { startMaintenance } from "./maintenance.js";
import { formatIssue, policyAppliedEvent, policyRejectedEvent } from "./policy-events.js";

/** A started sidecar: where it listens, and how to stop it. */
export interface RunningSidecar {
  readonly grpcAddress: string;
  /** The bound HTTP port (Connect, gRPC-Web, /metrics, /healthz, /readyz); undefined when off. */
  readonly httpAddress: string | undefined;
  readonly healthAddress: string | undefined;
  /** The bound operator-only HTTP listener (/metrics, /healthz, /readyz); undefined when off. */
  readonly metricsAddress: string | undefined;
  /** The process's metrics (what `/metrics` serves). */
  readonly metrics: Metrics;
  readonly policyVersion: string;
  /** Re-reads the policy file now (SIGHUP). */
  reloadPolicy(reason: string): Promise<void>;
  /** NOT_SERVING, drain in-flight calls (up to the grace period), stop watching, close LMDB. */
  stop(): Promise<void>;
}

/** Raised when the sidecar cannot start (no valid policy, unusable data dir, busy port). */
export class StartupError extends Error {
  override readonly name = "StartupError";
}

/**
 * Starts everything `serve` runs; resolves once it listens and is SERVING. A start-up that fails
 * closes what it had opened, the store last, whatever the error.
 */
export async function startSidecar(config: ServeConfig, logger: Logger): Promise<RunningSidecar> {
  routeGrpcLogs(logger);
  const writer: WriterWatch = { lost: (message) => logger.error("the data dir was taken over by another process", { message }) };
  // Opened unclaimed: the sidecar takes the dir over from another writer only once it can serve.
  const store = openStore(config, logger, (message) => writer.lost(message));
  const opened: (() => unknown)[] = [() => store.close()];
  try {
    return await startOnStore(store, opened, writer, config, logger);
  } catch (e) {
    for (const close of opened.reverse()) {
      try {
        await close();
      } catch (closeError) {
        // The start-up error is the one to report; this one only goes to the log.
        logger.error("closing after a failed start-up", { err: closeError });
      }
    }
    throw e;
  }
}

/** What the sidecar does when another process takes its data dir over (set once it serves). */
interface WriterWatch {
  lost: (message: string) => void;
}

/** The rest of start-up, on an open store; registers in `opened` how to close each part it opens. */
async function startOnStore(store: LmdbStore, opened: (() => unknown)[], writer: WriterWatch, config: ServeConfig, logger: Logger): Promise<RunningSidecar> {
  // Scrape-time sources are read only once the HTTP port serves /metrics, after `server` exists.
  const metrics = createMetrics({ storeStats: () => store.stats(), watchStats: () => server.watchStats() });
  let policy: CompiledPolicy | undefined;
  // Policy events go through the same durable log as decisions; a failure to log one must not
  // undo the apply (the policy is already in force), so it is logged, not thrown. Those of
  // start-up (the first policy's) wait for the claim.
  let beforeClaim: EngineEvent[] | undefined = [];
  const logPolicyEvent = (event: EngineEvent): void => {
    if (beforeClaim !== undefined) {
      beforeClaim.push(event);
      return;
    }
    store.commit([], [event]).catch((e: unknown) => logger.error("could not log policy event", { type: event.type, err: e }));
  };

  // The first policy compiles here (nothing is served yet); reloads compile on a worker thread,
  // so that requests are not held up by a cold YAML parse while the sidecar is serving. Run from
  // TypeScript sources there is no worker module to start, and reloads compile here too.
  const watchLogger = logger.child({ component: "watch" });
  const compiler = compileWorkerBuilt() ? createWorkerCompiler({ logger: watchLogger }) : undefined;
  const policyWatcher = createPolicyWatcher({
    path: config.policy,
    compile: (text, version) =>
      policy === undefined || compiler === undefined ? loadPolicy(text, { version }) : compiler.compile(text, version),
    onApplied: (next, info) => {
      const event = policyAppliedEvent(policy, next, info.source, info.appliedAt.getTime());
      const unitChanges = policy === undefined ? [] : creditUnitChanges(policy, next);
      policy = next; // the one atomic swap: each request reads this reference once
      for (const w of unitChanges) watchLogger.warn("credit units changed; stored meters are not converted", { version: info.version, path: w.path, message: w.message });
      metrics.policyApplied(next.version);
      logPolicyEvent(event);
    },
    onRejected: (issues, info) => {
      metrics.policyRejected();
      // The watcher has logged the rejection with its issues; this records it.
      logPolicyEvent(policyRejectedEvent(info.version, issues, info.source, info.rejectedAt.getTime()));
    },
    onRestored: (info) => {
      // The rejected edit was rolled back: the policy in force is the mounted document again.
      // Said with a policy-applied of its version, so that whatever a policy-rejected raised (an
      // alert) is cleared from the stream, and counted as one, so the metric agrees with the log.
      if (policy === undefined) return;
      metrics.policyApplied(policy.version);
      logPolicyEvent(policyAppliedEvent(policy, policy, info.source, info.restoredAt.getTime()));
    },
    pollIntervalMs: config.policyPollInterval,
    fsEvents: config.policyWatch === "events",
    logger: watchLogger,
  });

  // The watcher and the worker it compiles on stop together.
  const watcher: PolicyWatcher = {
    ...policyWatcher,
    close: async () => {
      await policyWatcher.close();
      await compiler?.close();
    },
  };

  opened.push(() => watcher.close());
  const initial = await watcher.start();
  if (initial.kind !== "applied" || policy === undefined) {
    throw new StartupError(`no valid policy at ${config.policy}: ${describeOutcome(watcher.status())}`);
  }
  const livePolicy = policy;

  const warnAltIdConflict = createAltIdConflictWarner(logger.child({ component: "engine" }));
  const engine = createEngine({
    store,
    policy: () => policy ?? livePolicy,
    clock: Date.now,
    newId: randomUUID,
    options: { idempotencyWindowMs: config.idempotencyWindow },
    onIdempotentReplay: (operation) => metrics.idempotentReplay(operation),
    onHintAltIdConflict: (conflict) => {
      metrics.hintAltIdConflict();
      warnAltIdConflict(conflict);
    },
    onResetRuleHistoryIgnored: (message) =>
      logger.child({ component: "engine" }).warn("the stored reset-rule history is unreadable; starting a new one", { message }),
  });

  const server = createSidecarServer({
    engine,
    events: store,
    policyStatus: () => toServerStatus(watcher.status()),
    state: {
      exportState: () => store.exportState(),
      importState: (records, fieldOf) => store.importState(records, fieldOf),
      listEvents: (q) => listEvents(store, q),
    },
    logger: logger.child({ component: "server" }),
    maxMessageBytes: config.maxMessageBytes,
    callObserver: metrics,
  });
  opened.push(() => server.shutdown(0));
  const unfollowEvents = metrics.followEvents(store);
  opened.push(unfollowEvents);

  // The HTTP port serves the very ServiceImpls of the gRPC port (one implementation per handler).
  const http: HttpEndpoint | undefined =
    config.httpAddress === "off"
      ? undefined
      : createHttpEndpoint({
          decisionService: server.decisionService,
          adminService: server.adminService,
          shutdownSignal: server.shutdownSignal,
          maxMessageBytes: server.maxMessageBytes,
          isServing: () => server.isServing(),
          metrics: () => metrics.render(),
          logger: logger.child({ component: "http" }),
          callObserver: metrics,
        });

  // Operator endpoints only, for an address outside the pod (Prometheus scrapes the pod IP)
  // while the APIs stay on loopback.
  const operator: HttpEndpoint | undefined =
    config.metricsAddress === undefined
      ? undefined
      : createOperatorEndpoint({
          isServing: () => server.isServing(),
          metrics: () => metrics.render(),
          logger: logger.child({ component: "metrics" }),
        });
  const httpEndpoints = [http, operator].filter((e): e is HttpEndpoint => e !== undefined);
  opened.push(() => Promise.all(httpEndpoints.map((h) => h.close(0))));

  let grpcAddress: string;
  let httpAddress: string | undefined;
  let healthAddress: string | undefined;
  let metricsAddress: string | undefined;
  try {
    grpcAddress = await server.listen(config.grpcAddress);
    if (http !== undefined && config.httpAddress !== "off") httpAddress = await http.listen(config.httpAddress);
    if (config.healthAddress !== undefined) healthAddress = await server.listenHealth(config.healthAddress);
    if (operator !== undefined && config.metricsAddress !== undefined) metricsAddress = await operator.listen(config.metricsAddress);
  } catch (e) {
    throw new StartupError(`cannot listen: ${(e as Error).message}`);
  }
  try {
    store.claim();
  } catch (e) {
    throw new StartupError(`cannot open data dir ${config.dataDir}: ${(e as Error).message}`);
  }
  const queued = beforeClaim;
  beforeClaim = undefined;
  for (const event of queued) logPolicyEvent(event);
  // A sidecar that can no longer write must not look ready: probes take it out of service (the
  // app beside it still gets FAILED_PRECONDITION on writes, naming the other process).
  writer.lost = (message) => {
    logger.error("the data dir was taken over by another process; not serving", { message });
    server.setServing(false);
  };
  server.setServing(true);

  const maintenance = startMaintenance(store, config, logger);

  let stopping: Promise<void> | undefined;
  return {
    grpcAddress,
    httpAddress,
    healthAddress,
    metricsAddress,
    metrics,
    policyVersion: livePolicy.version,
    reloadPolicy: async (reason) => {
      await watcher.reload(reason);
    },
    stop: () => {
      stopping ??= shutdown(server, httpEndpoints, watcher, store, maintenance, config, logger).finally(unfollowEvents);
      return stopping;
    },
  };
}

function openStore(config: ServeConfig, logger: Logger, onWriterLost: (message: string) => void): LmdbStore {
  try {
    const store = createLmdbStore({
      path: config.dataDir,
      fsync: config.fsync,
      ...(config.maxDataBytes === undefined ? {} : { maxDataBytes: config.maxDataBytes }),
      deferClaim: true,
      onWriterLost,
      onResetRuleHistorySetAside: (lastWriter) =>
        logger.warn("the stored reset-rule history was not kept by the data dir's last writer (a version that keeps none ran on it); starting a new one", { lastWriter }),
    });
    logger.info("store open", { dataDir: config.dataDir, fsync: config.fsync });
    for (const w of configWarnings(config)) logger.warn("configuration warning", { issue: w });
    return store;
  } catch (e) {
    throw new StartupError(`cannot open data dir ${config.dataDir}: ${(e as Error).message}`);
  }
}

async function shutdown(
  server: SidecarServer,
  httpEndpoints: readonly HttpEndpoint[],
  watcher: PolicyWatcher,
  store: LmdbStore,
  maintenance: NodeJS.Timeout,
  config: ServeConfig,
  logger: Logger,
): Promise<void> {
  logger.info("shutting down", { graceMs: config.shutdownGraceMs });
  clearInterval(maintenance);
  // All ports drain together, within the one grace period: NOT_SERVING (gRPC health and
  // /readyz) first, streams of both API ports end through the server's shutdown signal.
  await Promise.all([server.shutdown(config.shutdownGraceMs), ...httpEndpoints.map((h) => h.close(config.shutdownGraceMs))]);
  await watcher.close();
  await store.close();
  logger.info("stopped");
}

/** The audit query, answered by the store's filtered log scan. */
function listEvents(store: LmdbStore, q: EventQuery): EventPage {
  const page = store.listEvents({
    ...(q.customerId === undefined ? {} : { customerId: q.customerId }),
    entitlements: q.entitlements,
    types: q.types,
    ...(q.fromTime === undefined ? {} : { fromTime: q.fromTime }),
    ...(q.toTime === undefined ? {} : { toTime: q.toTime }),
    afterSeq: q.afterSequence,
    limit: q.limit,
  });
  return { events: page.events, nextAfterSequence: page.nextAfterSeq };
}

function toServerStatus(s: WatchStatus): PolicyStatus {
  return {
    version: s.version ?? "",
    appliedAt: s.appliedAt?.getTime(),
    source: s.source,
    lastErrors: s.lastError ? (s.lastError.issues.length > 0 ? s.lastError.issues.filter((i) => i.kind === "error").map(formatIssue) : [s.lastError.message]) : [],
    lastRejectedAt: s.lastRejectedAt?.getTime(),
    rejectionsSinceApplied: s.rejectedSinceLastSuccess,
  };
}

function describeOutcome(s: WatchStatus): string {
  if (!s.lastError) return "unknown error";
  const issues = s.lastError.issues.filter((i) => i.kind === "error").map(formatIssue);
  return issues.length > 0 ? `\n  ${issues.join("\n  ")}` : s.lastError.message;
}

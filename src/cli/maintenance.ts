/**
 * The sidecar's housekeeping, every `--maintenance-interval`: prune expired idempotency keys,
 * events past retention and long-expired reservations, then say whether the data nears
 * `--max-data-bytes`. The data check runs whether or not pruning worked: a prune that keeps
 * failing is when the data grows.
 */
import type { LmdbStore } from "../store/index.js";
import type { ServeConfig } from "./config.js";
import { createDataBudgetWatch } from "./data-budget-watch.js";
import type { Logger } from "./logger.js";

type MaintenanceConfig = Pick<ServeConfig, "eventRetention" | "eventRetentionCount" | "idempotencyWindow" | "maxDataBytes">;

/** One round; it never rejects (failures are logged). The data check keeps its state across rounds. */
export function createMaintenanceRound(store: LmdbStore, config: MaintenanceConfig, logger: Logger): () => Promise<void> {
  const budget = config.maxDataBytes === undefined ? undefined : createDataBudgetWatch(config.maxDataBytes);
  const checkBudget = (): void => {
    if (!budget) return;
    let warning;
    try {
      warning = budget(store.stats());
    } catch {
      return; // the store closed under a late round (shutdown): nothing to warn about
    }
    if (warning) {
      logger.warn("data nearing --max-data-bytes: writes are refused past it; shorten retention or raise the limit", { ...warning });
    }
  };
  return async () => {
    const now = Date.now();
    try {
      const [keys, events, reservations] = await Promise.all([
        store.pruneIdempotency(now),
        store.pruneEvents({ maxAgeMs: config.eventRetention, maxCount: config.eventRetentionCount, now }),
        // An expired reservation's usage may still be settled late (it happened); keep it as long
        // as a retried request is remembered, then drop it (a later Settle is NOT_FOUND).
        store.pruneReservations(now, config.idempotencyWindow),
      ]);
      if (keys.deleted + events.deleted + reservations.deleted > 0) {
        logger.info("pruned", { idempotencyKeys: keys.deleted, events: events.deleted, reservations: reservations.deleted });
      }
    } catch (e) {
      logger.error("pruning failed; will retry", { err: e });
    }
    checkBudget();
  };
}

/** Runs a round every `maintenanceInterval`; the timer does not keep the process alive. */
export function startMaintenance(store: LmdbStore, config: MaintenanceConfig & Pick<ServeConfig, "maintenanceInterval">, logger: Logger): NodeJS.Timeout {
  const round = createMaintenanceRound(store, config, logger);
  const timer = setInterval(() => void round(), config.maintenanceInterval);
  timer.unref();
  return timer;
}

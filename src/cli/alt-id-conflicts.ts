/**
 * Warnings for the alt ids a decision's customer hint named that another customer has (the engine
 * skips them and goes on). An application that always sends the hint would repeat the conflict on
 * every call: each customer and alt id is logged once, and the count is in the metrics.
 */
import type { AltIdConflict } from "../engine/index.js";
import type { Logger } from "./logger.js";

/** Pairs remembered before the memory starts afresh (one more warning each, at worst). */
const REMEMBERED = 10_000;

/** Returns the engine's `onHintAltIdConflict` logger: a warning per new customer and alt id. */
export function createAltIdConflictWarner(logger: Logger, remembered = REMEMBERED): (conflict: AltIdConflict) => void {
  const seen = new Set<string>();
  return (c) => {
    const key = JSON.stringify([c.customerId, c.altId]);
    if (seen.has(key)) return;
    if (seen.size >= remembered) seen.clear();
    seen.add(key);
    logger.warn("customer hint alt id skipped: another customer has it; the call was decided for its caller without it", {
      customerId: c.customerId,
      altId: c.altId,
      heldBy: c.heldBy,
    });
  };
}

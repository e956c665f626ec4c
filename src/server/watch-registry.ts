/**
 * The live WatchEvents subscribers, for metrics: how many there are and how far each is behind
 * the newest committed event. A subscriber registers a function reading its own cursor; nothing
 * is done per event, the lag is computed only when asked (at scrape).
 */
import type { WatchStats } from "./server-deps.js";

export interface WatchRegistry {
  /** Registers a subscriber; `position` returns the last sequence it got past. Returns the removal. */
  add(position: () => number): () => void;
  /** Count and lag of the subscribers now, against the newest committed sequence. */
  stats(lastSequence: number): WatchStats;
}

export function createWatchRegistry(): WatchRegistry {
  const positions = new Set<() => number>();
  return {
    add(position) {
      // A fresh wrapper per registration, so the same function registered twice counts twice.
      const entry = (): number => position();
      positions.add(entry);
      return () => {
        positions.delete(entry);
      };
    },
    stats(lastSequence) {
      let maxLagEvents = 0;
      let totalLagEvents = 0;
      for (const position of positions) {
        const lag = Math.max(0, lastSequence - position());
        totalLagEvents += lag;
        if (lag > maxLagEvents) maxLagEvents = lag;
      }
      return { subscribers: positions.size, maxLagEvents, totalLagEvents };
    },
  };
}

/**
 * A ListEvents query answered by reading the event log in order: correct for any store, used
 * when the store offers no indexed query. Each page reads at most `maxScan` events, so a query
 * over a large log costs bounded work per call and the client pages through the rest.
 */
import type { EventLog, StoredEvent } from "../engine/index.js";
import { createEventFilter } from "./event-filter.js";
import type { EventPage, EventQuery } from "./server-deps.js";

/** Default most events read per page. */
export const DEFAULT_MAX_SCAN = 10_000;

/** Answers `query` from `log` by a bounded in-order scan. */
export function scanEventLog(log: EventLog, query: EventQuery, maxScan = DEFAULT_MAX_SCAN): EventPage {
  const matches = createEventFilter(query);
  const events: StoredEvent[] = [];
  let after = query.afterSequence;
  let scanned = 0;
  const last = log.lastSequence();
  while (events.length < query.limit && scanned < maxScan && after < last) {
    const batch = log.readEvents(Math.max(after + 1, log.firstSequence()), Math.min(256, maxScan - scanned));
    if (batch.length === 0) break;
    for (const stored of batch) {
      scanned += 1;
      after = stored.seq;
      if (matches(stored)) {
        events.push(stored);
        if (events.length >= query.limit) break;
      }
    }
  }
  return { events, nextAfterSequence: after < last ? after : undefined };
}

/**
 * Garbage collection in a sidecar during one round of load, read from its own `/metrics`
 * (prom-client's `nodejs_gc_duration_seconds`, which the sidecar exports anyway) before and after
 * the round, and its WatchEvents feeds' lag at either end. Scraping forces nothing, unlike a
 * probe that would have to collect to measure: the state it would disturb is what is measured
 * here (docs/performance.md, "Subscribers and the young generation": scavenges of ~1 ms in one
 * state of the process, 2–5 ms in the other; the cause, under "The sessions' stream tables").
 */

/** Cumulative counts and seconds by kind, as the histogram has them. */
export interface GcTotals {
  readonly scavenges: number;
  readonly scavengeSeconds: number;
  /** Full collections: `major` plus the `incremental` marking that ends in one. */
  readonly markCompacts: number;
}

/** What one round added. */
export interface GcRound {
  readonly scavenges: number;
  /** Mean scavenge pause in ms (0 when there was none). */
  readonly meanScavengeMs: number;
  readonly markCompacts: number;
}

/** The sample of `metric` with `kind="<kind>"`, or 0 when it has none yet. */
function sample(text: string, metric: string, kind: string): number {
  const m = new RegExp(`^${metric}\\{kind="${kind}"[^}]*\\} (\\S+)$`, "m").exec(text);
  return m ? Number(m[1]) : 0;
}

export function parseGcTotals(text: string): GcTotals {
  const count = (kind: string): number => sample(text, "nodejs_gc_duration_seconds_count", kind);
  return {
    scavenges: count("minor"),
    scavengeSeconds: sample(text, "nodejs_gc_duration_seconds_sum", "minor"),
    markCompacts: count("major") + count("incremental"),
  };
}

/** The sidecar's `/metrics` page. */
export async function metricsText(metricsAddress: string): Promise<string> {
  const res = await fetch(`http://${metricsAddress}/metrics`);
  if (!res.ok) throw new Error(`GET /metrics on ${metricsAddress}: HTTP ${res.status}`);
  return await res.text();
}

/**
 * How far behind the furthest WatchEvents feed is, in events (`limitr_watch_max_lag_events`; 0
 * with no feed). A subscriber round follows a saturation run, which feeds may still be catching
 * up on when the half-load round starts: the bench reports it beside the round's p99.
 */
export function parseMaxWatchLag(text: string): number {
  const m = /^limitr_watch_max_lag_events (\S+)$/m.exec(text);
  return m ? Number(m[1]) : 0;
}

export function gcRound(before: GcTotals, after: GcTotals): GcRound {
  const scavenges = after.scavenges - before.scavenges;
  return {
    scavenges,
    meanScavengeMs: scavenges > 0 ? ((after.scavengeSeconds - before.scavengeSeconds) * 1000) / scavenges : 0,
    markCompacts: after.markCompacts - before.markCompacts,
  };
}

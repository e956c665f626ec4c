/**
 * `events()`: WatchEvents as an async iterator that reconnects after UNAVAILABLE or a lost
 * connection (a crashed sidecar included, see `isRetryable`) and resumes right after the last
 * event it delivered, or from a later position the sidecar reported (before the first event:
 * the one it announced on subscribing), so a sidecar restart neither loses nor repeats an event.
 * The events-lost marker is yielded, never swallowed. Events are received in batches
 * (`max_batch_events`) and yielded one at a time.
 */
import { Code, ConnectError, type Client } from "@connectrpc/connect";
import type { DecisionService } from "../gen/limitr/v1/decision_pb.js";
import { backoffMs, sleep, type RetryPolicy } from "./call-with-retry.js";
import { fromStreamFailure } from "./connection-failure.js";
import { isRetryable, toLimitrError } from "./limitr-error.js";
import { eventTypeValue, toWatchItems } from "./map-messages.js";
import type { WatchItem, WatchOptions } from "./types.js";

/** Events per WatchEvents message the client asks for (the server caps it at 1024). */
const WATCH_BATCH_EVENTS = 256;

export async function* watchEvents(
  decision: Client<typeof DecisionService>,
  options: WatchOptions,
  retry: RetryPolicy,
  closed: AbortSignal,
): AsyncGenerator<WatchItem, void, undefined> {
  const types = (options.types ?? []).map(eventTypeValue);
  const maxBatchDelayMs = options.maxBatchDelayMs ?? 0;
  if (!Number.isInteger(maxBatchDelayMs) || maxBatchDelayMs < 0) {
    throw new TypeError(`maxBatchDelayMs must be a whole number of milliseconds, 0 or more, got ${maxBatchDelayMs}`);
  }
  const reconnect = options.reconnect ?? true;
  const maxFailures = options.maxReconnectAttempts ?? Infinity;
  let next = options.fromSequence === undefined ? undefined : BigInt(options.fromSequence);
  let failures = 0;
  const ctl = new AbortController();
  const stop = options.signal ? AbortSignal.any([options.signal, closed]) : closed;
  const onStop = (): void => ctl.abort();
  stop.addEventListener("abort", onStop, { once: true });
  try {
    while (!stop.aborted) {
      let error: unknown;
      try {
        const stream = decision.watchEvents(
          {
            ...(next === undefined ? {} : { fromSequence: next }),
            types,
            customerId: options.customerId ?? "",
            entitlements: [...(options.entitlements ?? [])],
            // Events ready together come in one message; they are still yielded one by one.
            maxBatchEvents: WATCH_BATCH_EVENTS,
            maxBatchDelayMs: Math.min(maxBatchDelayMs, 0xffff_ffff),
            // The position comes first: a stream that breaks before its first event resumes
            // from it instead of starting live again and missing what committed meanwhile. Later
            // ones keep a filtered stream's resume point up with the log.
            sendPosition: true,
          },
          { signal: ctl.signal },
        );
        let first = true;
        for await (const msg of stream) {
          const opening = first;
          first = false;
          if (msg.kind.case === "position") {
            // Every stream opens with one: only a later position shows the stream kept working
            // (a stream that breaks right after opening is a failed attempt).
            if (!opening) failures = 0;
            next = msg.kind.value.nextSequence;
            options.onPosition?.(Number(next));
            continue;
          }
          for (const item of toWatchItems(msg)) {
            // A batch holds up to 256 events: stopping means now, not after the rest of it.
            if (stop.aborted) return;
            failures = 0;
            next = BigInt(item.kind === "event" ? item.sequence + 1 : item.firstAvailableSequence);
            yield item;
          }
        }
        // The feed never ends by itself: a clean end means the server went away (shutdown).
        error = new ConnectError("event stream ended by the server", Code.Unavailable);
      } catch (e) {
        // Not the caller's cancellation (checked next): a lost sidecar, whatever connect-node
        // called it.
        error = stop.aborted ? e : fromStreamFailure(e);
      }
      if (stop.aborted) return;
      const attempts = failures + 1;
      if (!reconnect || !isRetryable(error, stop) || ++failures > maxFailures) throw toLimitrError(error, "WatchEvents", attempts);
      const delayMs = backoffMs(retry, failures);
      retry.onRetry?.({ method: "WatchEvents", attempt: failures, delayMs, error: error as Error });
      try {
        await sleep(delayMs, stop);
      } catch {
        return;
      }
    }
  } finally {
    stop.removeEventListener("abort", onStop);
    ctl.abort();
  }
}

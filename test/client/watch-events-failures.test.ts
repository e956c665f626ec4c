/**
 * events() counts reconnect attempts by what each stream proved: the position every stream opens
 * with proves nothing, so a sidecar (or a proxy) that breaks streams right after opening them
 * still exhausts maxReconnectAttempts, with a growing backoff. The server here is connect's
 * in-memory router: the accounting is the client's own logic.
 */
import { Code, ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { DecisionService, type WatchEventsRequest } from "../../src/gen/limitr/v1/decision_pb.js";
import { watchEvents } from "../../src/client/watch-events.js";
import type { RetryInfo } from "../../src/client/index.js";

describe("events() reconnect accounting with send_position", () => {
  it("a stream that breaks right after its position counts as a failed attempt (maxReconnectAttempts, growing backoff)", async () => {
    let attempts = 0;
    const transport = createRouterTransport(({ service }) => {
      service(DecisionService, {
        async *watchEvents(req: WatchEventsRequest) {
          attempts++;
          // What a sidecar does: the position first, then (here) the stream breaks.
          yield { kind: { case: "position", value: { nextSequence: req.fromSequence ?? 1n } } };
          throw new ConnectError("connection reset", Code.Unavailable);
        },
      } as never);
    });
    const decision = createClient(DecisionService, transport);
    const retries: RetryInfo[] = [];
    const closed = new AbortController();
    const it = watchEvents(
      decision,
      { maxReconnectAttempts: 2 },
      { retries: 3, initialBackoffMs: 1, maxBackoffMs: 1000, onRetry: (r) => retries.push(r) },
      closed.signal,
    );
    const guard = setTimeout(() => closed.abort(), 3000); // ends the iteration if it never gives up
    let outcome: string;
    try {
      await it.next();
      outcome = "ended without error";
    } catch (e) {
      outcome = `gave up: ${(e as Error).message}`;
    } finally {
      clearTimeout(guard);
    }
    // Expected: 1 attempt + 2 reconnects, then the LimitrError, with backoff attempts 1, 2.
    expect(retries.map((r) => r.attempt)).toEqual([1, 2]);
    expect(attempts).toBe(3);
    expect(outcome).toMatch(/^gave up/);
  });

  it("a stream that reported progress (a later position) before breaking was a working one: the count starts again", async () => {
    let attempts = 0;
    const transport = createRouterTransport(({ service }) => {
      service(DecisionService, {
        async *watchEvents(req: WatchEventsRequest) {
          attempts++;
          const at = req.fromSequence ?? 1n;
          yield { kind: { case: "position", value: { nextSequence: at } } };
          yield { kind: { case: "position", value: { nextSequence: at + 10n } } };
          throw new ConnectError("connection reset", Code.Unavailable);
        },
      } as never);
    });
    const decision = createClient(DecisionService, transport);
    const retries: RetryInfo[] = [];
    const closed = new AbortController();
    const it = watchEvents(
      decision,
      { maxReconnectAttempts: 2, onPosition: () => (attempts >= 6 ? closed.abort() : undefined) },
      { retries: 3, initialBackoffMs: 1, maxBackoffMs: 1000, onRetry: (r) => retries.push(r) },
      closed.signal,
    );
    expect((await it.next()).done).toBe(true); // ended by close(), never given up
    expect(attempts).toBeGreaterThanOrEqual(6);
    expect(retries.every((r) => r.attempt === 1)).toBe(true);
  });
});

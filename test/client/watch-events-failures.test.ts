/**
 * events() counts reconnect attempts by what each stream proved: the position every stream opens
 * with proves nothing, so a sidecar (or a proxy) that breaks streams right after opening them
 * still exhausts maxReconnectAttempts, with a growing backoff. The server here is connect's
 * in-memory router: the accounting is the client's own logic.
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import type { RetryInfo, WatchOptions } from "../../src/client/index.js";
import { watchEvents } from "../../src/client/watch-events.js";
import { createLimitrClient } from "../../src/client/index.js";
import { DecisionService } from "../../src/gen/limitr/v1/decision_pb.js";

/**
 * events() against a server whose every stream sends these positions (offsets from where the
 * stream was asked to start), then breaks as a lost connection does.
 */
function breakingStreams(offsets: readonly bigint[], options: (attempts: () => number, close: () => void) => WatchOptions) {
  let attempts = 0;
  const transport = createRouterTransport(({ service }) => {
    service(DecisionService, {
      async *watchEvents(req: { fromSequence?: bigint }) {
        attempts++;
        const at = req.fromSequence ?? 1n;
        for (const offset of offsets) yield { kind: { case: "position", value: { nextSequence: at + offset } } };
        throw new ConnectError("connection reset", Code.Unavailable);
      },
    } as never);
  });
  const retries: RetryInfo[] = [];
  const closed = new AbortController();
  const it = watchEvents(
    createClient(DecisionService, transport),
    options(() => attempts, () => closed.abort()),
    { retries: 3, initialBackoffMs: 1, maxBackoffMs: 1000, onRetry: (r) => retries.push(r) },
    closed.signal,
  );
  return { it, retries, attempts: () => attempts, close: () => closed.abort() };
}

describe("events() reconnect accounting with send_position", () => {
  it("a stream that breaks right after its position counts as a failed attempt (maxReconnectAttempts, growing backoff)", async () => {
    const s = breakingStreams([0n], () => ({ maxReconnectAttempts: 2 }));
    const guard = setTimeout(s.close, 3000); // ends the iteration if it never gives up
    let outcome: string;
    let attempts: unknown;
    try {
      await s.it.next();
      outcome = "ended without error";
    } catch (e) {
      outcome = `gave up: ${(e as Error).message}`;
      attempts = (e as { attempts?: unknown }).attempts;
    } finally {
      clearTimeout(guard);
    }
    // 1 attempt + 2 reconnects, then the LimitrError, with backoff attempts 1, 2.
    expect(s.retries.map((r) => r.attempt)).toEqual([1, 2]);
    expect(s.attempts()).toBe(3);
    expect(outcome).toMatch(/^gave up/);
    expect(attempts).toBe(3); // the error counts the streams opened, as the server saw them
  });

  it("a stream that reported progress (a later position) before breaking was a working one: the count starts again", async () => {
    const s = breakingStreams([0n, 10n], (attempts, close) => ({ maxReconnectAttempts: 2, onPosition: () => (attempts() >= 6 ? close() : undefined) }));
    expect((await s.it.next()).done).toBe(true); // ended by close(), never given up
    expect(s.attempts()).toBeGreaterThanOrEqual(6);
    expect(s.retries.every((r) => r.attempt === 1)).toBe(true);
  });
});

describe("events() failures", () => {
  it("a stream a dying connection reset (connect-node: CANCELLED) is UNAVAILABLE, not the caller's cancellation", async () => {
    const transport = createRouterTransport(({ service }) => {
      service(DecisionService, {
        // eslint-disable-next-line require-yield
        async *watchEvents() {
          throw new ConnectError("http/2 stream closed with error code CANCEL (0x8)", Code.Canceled);
        },
      } as never);
    });
    const it = watchEvents(createClient(DecisionService, transport), { reconnect: false }, { retries: 0, initialBackoffMs: 1, maxBackoffMs: 1, onRetry: undefined }, new AbortController().signal);
    await expect(it.next()).rejects.toMatchObject({ code: "UNAVAILABLE" });
  });

  it("a unix socket that does not exist is UNAVAILABLE, as for a unary call", async () => {
    const path = join(mkdtempSync(join(tmpdir(), "limitr-unix-")), "gone.sock");
    const c = createLimitrClient({ address: `unix:${path}` });
    try {
      await expect(c.events({ reconnect: false })[Symbol.asyncIterator]().next()).rejects.toMatchObject({ code: "UNAVAILABLE" });
    } finally {
      c.close();
    }
  });
});

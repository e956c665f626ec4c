/**
 * Retries and reconnects against a real sidecar that goes away: a call started while the sidecar
 * is down succeeds once it is back; a reply lost past the deadline or to a crash (kill -9) is
 * retried with the same idempotency key and counts once; the caller's own cancellation is final;
 * the events iterator resumes across a restart or a crash without gap or duplicate; events pruned
 * by retention surface as an events-lost marker.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLimitrClient, type LimitrClient, type LimitrError, type RetryInfo, type WatchItem } from "../../src/client/index.js";
import { startSidecar, stopSidecar, type SidecarProcess } from "../e2e/helpers/sidecar-process.js";
import { startPausableProxy, type PausableProxy } from "./pausable-proxy.js";

const POLICY = ["--policy", "examples/policies/combined.yaml"];
let dir: string;
let sidecar: SidecarProcess;
let address: string;

/** `p`, or a failure naming `what` after `ms`: a test that would hang fails and cleans up instead. */
function within<T>(p: Promise<T>, what: string, ms = 20_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms)));
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

/** A client that records its retries and lets a test wait for the n-th. */
function recordingClient(addr: string, extra: { timeoutMs?: number; retries?: number; initialBackoffMs?: number; maxBackoffMs?: number } = {}) {
  const retries: RetryInfo[] = [];
  const waiters: { n: number; resolve: () => void }[] = [];
  const client = createLimitrClient({
    address: addr,
    initialBackoffMs: extra.initialBackoffMs ?? 20,
    maxBackoffMs: extra.maxBackoffMs ?? 100,
    retries: extra.retries ?? 10_000,
    ...(extra.timeoutMs === undefined ? {} : { timeoutMs: extra.timeoutMs }),
    onRetry: (info) => {
      retries.push(info);
      for (const w of waiters.filter((x) => retries.length >= x.n)) w.resolve();
    },
  });
  const retried = (n = 1): Promise<void> => (retries.length >= n ? Promise.resolve() : new Promise((resolve) => waiters.push({ n, resolve })));
  return { client, retries, retried };
}

/**
 * Runs `body` with a client behind a proxy that can hold back the sidecar's answers, and a
 * client connected directly; both clients and the proxy are closed after.
 */
async function behindProxy(
  extra: Parameters<typeof recordingClient>[1],
  body: (t: ReturnType<typeof recordingClient> & { proxy: PausableProxy; direct: LimitrClient }) => Promise<void>,
): Promise<void> {
  const proxy = await startPausableProxy(address);
  const direct = createLimitrClient({ address });
  const recording = recordingClient(proxy.address, extra);
  try {
    await body({ ...recording, proxy, direct });
  } finally {
    proxy.resume();
    recording.client.close();
    direct.close();
    await proxy.close();
  }
}

const restart = async (): Promise<void> => {
  expect((await stopSidecar(sidecar)).code).toBe(0);
  sidecar = await startSidecar([...POLICY, "--data-dir", dir, "--grpc-address", address]);
};

/** kill -9 and start again on the same address: open HTTP/2 streams die without a status. */
const crash = async (): Promise<void> => {
  sidecar.kill("SIGKILL");
  await sidecar.exited;
  sidecar = await startSidecar([...POLICY, "--data-dir", dir, "--grpc-address", address]);
};

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "limitr-client-retry-"));
  sidecar = await startSidecar([...POLICY, "--data-dir", dir]);
  address = sidecar.grpcAddress;
});

afterAll(async () => {
  if (sidecar) await stopSidecar(sidecar);
  rmSync(dir, { recursive: true, force: true });
});

describe("retries", () => {
  it("a failed call that was counted carries its idempotency key: the app's own retry with it counts once", async () => {
    await behindProxy({ timeoutMs: 300, retries: 0 }, async ({ proxy, direct, client }) => {
      expect((await client.record("appretry_1", "gpt_tokens", 1)).value).toBe(1); // connection up
      proxy.pause(); // the request reaches the sidecar and commits; its answer is held back
      const e = await client.record("appretry_1", "gpt_tokens", 100).then(() => undefined, (err: unknown) => err as LimitrError);
      expect(e).toMatchObject({ name: "LimitrError", code: "DEADLINE_EXCEEDED", method: "Record", attempts: 1 });
      expect(e?.idempotencyKey).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7/);
      expect((await direct.getMeters("appretry_1", ["gpt_tokens"]))[0]?.value).toBe(101); // counted despite the error
      proxy.resume();
      const again = await client.record("appretry_1", "gpt_tokens", 100, { idempotencyKey: e!.idempotencyKey! });
      expect(again.value).toBe(101); // the first answer, replayed
      expect((await direct.getMeters("appretry_1", ["gpt_tokens"]))[0]?.value).toBe(101);
      // A key of the caller's own is the one on the error; a call without a key has none.
      proxy.pause();
      const mine = await client.settle("no-such-reservation", "gpt_tokens", 1, { idempotencyKey: "settle-key-1" }).catch((err: unknown) => err as LimitrError);
      expect(mine).toMatchObject({ code: "DEADLINE_EXCEEDED", idempotencyKey: "settle-key-1" });
      const release = await client.release("no-such-reservation").catch((err: unknown) => err as LimitrError);
      expect(release).toMatchObject({ code: "DEADLINE_EXCEEDED" });
      expect(release).not.toHaveProperty("idempotencyKey");
    });
  });

  it("a call made while the sidecar is down is retried until it is back, and counts once", async () => {
    const { client, retries, retried } = recordingClient(address);
    try {
      expect((await client.allow("down_1", "gpt_tokens", 100)).value).toBe(100);
      expect((await stopSidecar(sidecar)).code).toBe(0);
      const pending = client.allow("down_1", "gpt_tokens", 200);
      await retried(2); // the sidecar is really down: attempts are failing
      expect((retries[0]?.error as unknown as LimitrError).message).toBeTruthy();
      sidecar = await startSidecar([...POLICY, "--data-dir", dir, "--grpc-address", address]);
      const d = await pending;
      expect(d).toMatchObject({ allowed: true, reason: "OK", value: 300 });
      expect(retries.every((r) => r.method === "Allow")).toBe(true);
      expect((await client.getMeters("down_1", ["gpt_tokens"]))[0]?.value).toBe(300);
    } finally {
      client.close();
    }
  });

  it("with no retries left the call fails with UNAVAILABLE", async () => {
    const c = createLimitrClient({ address: "127.0.0.1:1", retries: 2, initialBackoffMs: 1 });
    try {
      await expect(c.allow("x", "gpt_tokens", 1)).rejects.toMatchObject({ code: "UNAVAILABLE", attempts: 3 });
    } finally {
      c.close();
    }
  });

  it("a reply lost past the deadline is retried with the same idempotency key and counts once", async () => {
    const proxy = await startPausableProxy(address);
    const direct = createLimitrClient({ address });
    const { client, retries, retried } = recordingClient(proxy.address, { timeoutMs: 300, retries: 5 });
    try {
      expect((await client.allow("lost_1", "gpt_tokens", 1)).value).toBe(1); // connection up
      proxy.pause();
      const pending = client.allow("lost_1", "gpt_tokens", 500);
      // The first attempt reached the sidecar and was counted; only its answer is held back.
      while ((await direct.getMeters("lost_1", ["gpt_tokens"]))[0]?.value !== 501) await sleep(20);
      await retried(1);
      expect((retries[0]?.error as unknown as { code: number }).code).toBe(4); // DEADLINE_EXCEEDED
      proxy.resume();
      const d = await pending;
      expect(d).toMatchObject({ allowed: true, value: 501 }); // the first answer, replayed
      expect((await direct.getMeters("lost_1", ["gpt_tokens"]))[0]?.value).toBe(501);
      // One meter-changed for the 500, carrying the key both attempts sent.
      const changes: WatchItem[] = [];
      for await (const e of direct.events({ types: ["meter-changed"], customerId: "lost_1", fromSequence: 1 })) {
        changes.push(e);
        if (changes.length === 2) break;
      }
      const second = changes[1];
      expect(second?.kind === "event" && second.meter?.diff).toBe(500);
      const next = await direct.allow("lost_1", "gpt_tokens", 2);
      expect(next.value).toBe(503);
    } finally {
      client.close();
      direct.close();
      await proxy.close();
    }
  });

  it("a call in flight when the sidecar is killed (kill -9) is retried with its key and counts once", async () => {
    const proxy = await startPausableProxy(address);
    const direct = createLimitrClient({ address });
    const { client, retries } = recordingClient(proxy.address, { timeoutMs: 5_000, retries: 50 });
    try {
      expect((await client.allow("crash_1", "gpt_tokens", 1)).value).toBe(1); // connection up
      proxy.pause();
      const pending = client.allow("crash_1", "gpt_tokens", 10).catch((e: unknown) => e as LimitrError);
      while ((await direct.getMeters("crash_1", ["gpt_tokens"]))[0]?.value !== 11) await sleep(10); // counted
      direct.close();
      // The sidecar dies before its answer gets out: the lost stream reads as CANCELLED or a socket error.
      await crash();
      proxy.resume();
      const d = await pending;
      expect(d).toMatchObject({ allowed: true, value: 11 }); // the first answer, replayed for the same key
      expect(retries.length).toBeGreaterThanOrEqual(1);
      expect((await client.getMeters("crash_1", ["gpt_tokens"]))[0]?.value).toBe(11);
    } finally {
      client.close();
      direct.close();
      await proxy.close();
    }
  });

  it("close() or the caller's signal while a call waits to retry fails it with CANCELLED, not the last attempt's error", async () => {
    // Nothing listens on port 1: every attempt is refused, then a 5 s backoff the test cuts short.
    const slow = { retries: 5, initialBackoffMs: 5_000, maxBackoffMs: 5_000 };
    const closing = recordingClient("127.0.0.1:1", slow);
    const byClose = closing.client.allow("backoff_1", "gpt_tokens", 1).catch((e: unknown) => e as LimitrError);
    await closing.retried(1); // the first attempt failed (UNAVAILABLE); now in backoff
    closing.client.close();
    expect(await byClose).toMatchObject({ name: "LimitrError", code: "CANCELLED", method: "Allow", attempts: 1 });

    const aborting = recordingClient("127.0.0.1:1", slow);
    const ctl = new AbortController();
    const bySignal = aborting.client.allow("backoff_1", "gpt_tokens", 1, { signal: ctl.signal }).catch((e: unknown) => e as LimitrError);
    await aborting.retried(1);
    ctl.abort();
    expect(await bySignal).toMatchObject({ name: "LimitrError", code: "CANCELLED", method: "Allow", attempts: 1 });
    aborting.client.close();
  });

  it("setCustomerPlan with resetMeters is not retried once it may have reached the sidecar: a retry would wipe later usage", async () => {
    await behindProxy({ timeoutMs: 500, retries: 3 }, async ({ proxy, direct, client, retries }) => {
      await direct.upsertCustomer({ id: "reset_1", plan: "free" });
      expect((await direct.allow("reset_1", "gpt_tokens", 100)).value).toBe(100);
      await client.getPolicyStatus(); // connection up
      proxy.pause(); // requests still reach the sidecar; its replies are held back
      const pending = client.setCustomerPlan("reset_1", "pro", { resetMeters: true }).catch((e: unknown) => e as LimitrError);
      while ((await direct.getCustomer("reset_1"))?.plan !== "pro") await sleep(10); // the reset committed
      expect((await direct.allow("reset_1", "gpt_tokens", 700)).value).toBe(700); // usage right after the upgrade
      expect(await pending).toMatchObject({ code: "DEADLINE_EXCEEDED", method: "SetCustomerPlan", attempts: 1 });
      expect(retries).toEqual([]);
      proxy.resume();
      expect((await direct.getMeters("reset_1", ["gpt_tokens"]))[0]?.value).toBe(700);
    });
  });

  it("setCustomerPlan with resetMeters is retried while the sidecar refuses connections, and resets once", async () => {
    const { client, retried } = recordingClient(address);
    try {
      await client.upsertCustomer({ id: "reset_2", plan: "free" });
      expect((await client.allow("reset_2", "gpt_tokens", 100)).value).toBe(100);
      expect((await stopSidecar(sidecar)).code).toBe(0);
      const pending = client.setCustomerPlan("reset_2", "pro", { resetMeters: true });
      await retried(2); // refused: the request never left, so retrying it is safe
      sidecar = await startSidecar([...POLICY, "--data-dir", dir, "--grpc-address", address]);
      expect(await pending).toMatchObject({ id: "reset_2", plan: "pro" });
      expect((await client.getMeters("reset_2", ["gpt_tokens"]))[0]?.value).toBe(0);
    } finally {
      client.close();
    }
  });

  it("deleteCustomer is not retried once it may have reached the sidecar: a retry could delete the customer re-created meanwhile", async () => {
    await behindProxy({ timeoutMs: 500, retries: 3 }, async ({ proxy, direct, client, retries }) => {
      await direct.upsertCustomer({ id: "del_1", plan: "free" });
      await client.getPolicyStatus(); // connection up
      proxy.pause();
      const pending = client.deleteCustomer("del_1").catch((e: unknown) => e as LimitrError);
      while ((await direct.getCustomer("del_1")) !== undefined) await sleep(10); // the delete committed
      expect((await direct.allow("del_1", "gpt_tokens", 700)).value).toBe(700); // first use again: created anew
      expect(await pending).toMatchObject({ code: "DEADLINE_EXCEEDED", method: "DeleteCustomer", attempts: 1 });
      expect(retries).toEqual([]);
      proxy.resume();
      expect((await direct.getMeters("del_1", ["gpt_tokens"]))[0]?.value).toBe(700);
    });
  });

  it('an empty idempotencyKey ("") gets a key of its own: a reply lost past the deadline still counts once', async () => {
    await behindProxy({ timeoutMs: 300, retries: 5 }, async ({ proxy, direct, client, retried }) => {
      expect((await client.allow("nokey_1", "gpt_tokens", 1, { idempotencyKey: "" })).value).toBe(1);
      proxy.pause();
      const pending = client.allow("nokey_1", "gpt_tokens", 100, { idempotencyKey: "" });
      while ((await direct.getMeters("nokey_1", ["gpt_tokens"]))[0]?.value !== 101) await sleep(20);
      await retried(1);
      proxy.resume();
      expect(await pending).toMatchObject({ allowed: true, value: 101 });
      expect((await direct.getMeters("nokey_1", ["gpt_tokens"]))[0]?.value).toBe(101);
    });
  });

  it("a deadline already past (timeoutMs: 0) fails at once, without retries", async () => {
    const { client, retries } = recordingClient(address, { retries: 5 });
    try {
      await expect(client.allow("past_1", "gpt_tokens", 1, { timeoutMs: 0 })).rejects.toMatchObject({ code: "DEADLINE_EXCEEDED", attempts: 1 });
      expect(retries).toEqual([]);
    } finally {
      client.close();
    }
  });

  it("a call the caller cancels with its signal fails with CANCELLED and is not retried", async () => {
    const proxy = await startPausableProxy(address);
    const direct = createLimitrClient({ address });
    const { client, retries } = recordingClient(proxy.address, { timeoutMs: 5_000, retries: 5 });
    try {
      await client.getMeters("cancel_1", ["gpt_tokens"]); // connection up
      proxy.pause();
      const ctl = new AbortController();
      const pending = client.allow("cancel_1", "gpt_tokens", 10, { signal: ctl.signal }).catch((e: unknown) => e as LimitrError);
      while ((await direct.getMeters("cancel_1", ["gpt_tokens"]))[0]?.value !== 10) await sleep(10); // in flight
      ctl.abort();
      expect(await pending).toMatchObject({ name: "LimitrError", code: "CANCELLED", attempts: 1 });
      expect(retries).toEqual([]);
    } finally {
      proxy.resume();
      client.close();
      direct.close();
      await proxy.close();
    }
  });
});

describe("events() across restarts", () => {
  it("resumes after a sidecar restart with no gap and no duplicate", async () => {
    const writer: LimitrClient = createLimitrClient({ address, retries: 50, maxBackoffMs: 200 });
    const { client } = recordingClient(address);
    const it = client.events({ types: ["meter-changed"], customerId: "ev_restart", fromSequence: 1 })[Symbol.asyncIterator]();
    const seen: number[] = [];
    const take = async (n: number): Promise<void> => {
      for (let i = 0; i < n; i++) {
        const r = await it.next();
        const e = r.value as WatchItem;
        if (e.kind !== "event") throw new Error("unexpected events-lost");
        seen.push(e.meter!.newValue);
      }
    };
    try {
      for (let i = 1; i <= 3; i++) await writer.record("ev_restart", "gpt_tokens", 1);
      await take(3);
      await restart();
      for (let i = 1; i <= 2; i++) await writer.record("ev_restart", "gpt_tokens", 1);
      await take(2);
      expect(seen).toEqual([1, 2, 3, 4, 5]);
    } finally {
      client.close(); // first: it ends a pending next(), which return() would wait for
      await it.return?.();
      writer.close();
    }
  });

  it("resumes after the sidecar is killed (kill -9) instead of ending with CANCELLED", async () => {
    const writer: LimitrClient = createLimitrClient({ address, retries: 50, maxBackoffMs: 200 });
    const { client } = recordingClient(address);
    const it = client.events({ types: ["meter-changed"], customerId: "ev_crash", fromSequence: 1 })[Symbol.asyncIterator]();
    try {
      await writer.record("ev_crash", "gpt_tokens", 1);
      expect((await it.next()).value).toMatchObject({ kind: "event", meter: { newValue: 1 } });
      const next = it.next();
      next.catch(() => undefined); // observed below; a rejection must not go unhandled meanwhile
      await crash();
      await writer.record("ev_crash", "gpt_tokens", 1);
      const item = await within(next.then((r) => r.value, (e: unknown) => e), "the next event after reconnecting");
      expect(item).toMatchObject({ kind: "event", meter: { newValue: 2 } });
    } finally {
      client.close(); // first: it ends a pending next(), which return() would wait for
      await it.return?.();
      writer.close();
    }
  });

  it("without fromSequence, a stream cut before its first event resumes from the subscription's position", async () => {
    const proxy = await startPausableProxy(address);
    const writer = createLimitrClient({ address });
    const { client, retried } = recordingClient(proxy.address);
    let subscribed!: () => void;
    const positions: number[] = [];
    const confirmed = new Promise<void>((resolve) => (subscribed = resolve));
    const stream = client.events({ customerId: "ev_live", onPosition: (n) => (positions.push(n), subscribed()) });
    const it = stream[Symbol.asyncIterator]();
    try {
      await writer.record("ev_live", "gpt_tokens", 1); // before subscribing: not delivered
      const first = it.next();
      first.catch(() => undefined); // observed below
      await within(confirmed, "the subscription's position");
      proxy.cut();
      await retried(1);
      // Committed while the client cannot reach the sidecar: a live-only restart would skip it.
      await writer.record("ev_live", "gpt_tokens", 1);
      proxy.restore();
      const item = await within(first.then((r) => r.value, (e: unknown) => e), "the event committed while cut off");
      expect(item).toMatchObject({ kind: "event", sequence: positions[0], meter: { newValue: 2 } });
      expect(positions.length).toBeGreaterThanOrEqual(2); // confirmed again on reconnecting
      expect(positions.every((p) => p === positions[0])).toBe(true);
    } finally {
      client.close(); // first: it ends a pending next(), which return() would wait for
      await it.return?.();
      writer.close();
      await proxy.close();
    }
  });

  it("a filtered stream's resume point follows the log: a reconnect after others' events were pruned reports nothing lost", async () => {
    const dir2 = mkdtempSync(join(tmpdir(), "limitr-client-pos-"));
    const small = await startSidecar([...POLICY, "--data-dir", dir2, "--event-retention-count", "5", "--maintenance-interval", "1s"]);
    const proxy = await startPausableProxy(small.grpcAddress);
    const writer = createLimitrClient({ address: small.grpcAddress });
    const { client, retried } = recordingClient(proxy.address);
    const positions: number[] = [];
    let moved!: () => void;
    let subscribed!: () => void;
    const past = new Promise<void>((resolve) => (moved = resolve));
    const live = new Promise<void>((resolve) => (subscribed = resolve));
    let mark = Infinity;
    const onPosition = (n: number): void => {
      positions.push(n);
      subscribed();
      if (n > mark) moved();
    };
    const stream = client.events({ customerId: "pos_mine", types: ["meter-changed"], onPosition });
    const it = stream[Symbol.asyncIterator]();
    try {
      const first = it.next();
      first.catch(() => undefined); // observed below
      await within(live, "the subscription's position"); // what commits before it is not for this live-only stream
      await writer.record("pos_mine", "gpt_tokens", 1);
      const mine = (await within(first, "the stream's first event")).value as WatchItem;
      expect(mine).toMatchObject({ kind: "event", meter: { newValue: 1 } });
      const seq = mine.kind === "event" ? mine.sequence : -1;
      // Others' events, enough for retention (5) to prune past this stream's last event.
      for (let i = 0; i < 12; i++) await writer.record(`pos_other_${i}`, "gpt_tokens", 1);
      mark = seq + 1;
      const next = it.next();
      next.catch(() => undefined); // observed below
      await within(past, "a position past others' events"); // sent after the stream's quiet interval
      // Wait until retention has pruned the event right after this stream's last one.
      const oldestRetained = async (): Promise<number> => {
        for await (const e of writer.events({ fromSequence: 1, reconnect: false })) return e.kind === "events-lost" ? e.firstAvailableSequence : 1;
        return 1;
      };
      const pruned = async (): Promise<void> => {
        while ((await oldestRetained()) <= seq + 1) await sleep(100);
      };
      await within(pruned(), "retention to prune past the stream's last event");
      proxy.cut();
      await retried(1);
      proxy.restore();
      await writer.record("pos_mine", "gpt_tokens", 1);
      // Resumed from the reported position, not from seq + 1 (pruned): no events-lost marker.
      expect(await next.then((r) => r.value, (e: unknown) => e)).toMatchObject({ kind: "event", meter: { newValue: 2 } });
    } finally {
      client.close(); // first: it ends a pending next(), which return() would wait for
      await it.return?.();
      writer.close();
      await proxy.close();
      await stopSidecar(small);
      rmSync(dir2, { recursive: true, force: true });
    }
  });

  it("events pruned by retention arrive as an events-lost marker, then delivery continues", async () => {
    const dir2 = mkdtempSync(join(tmpdir(), "limitr-client-lost-"));
    const small = await startSidecar([...POLICY, "--data-dir", dir2, "--event-retention-count", "3", "--maintenance-interval", "1s"]);
    const c = createLimitrClient({ address: small.grpcAddress });
    try {
      for (let i = 0; i < 6; i++) await c.record("lost_ev", "gpt_tokens", 1);
      while (!small.logs.some((l) => l["msg"] === "pruned")) await sleep(50);
      const items: WatchItem[] = [];
      for await (const e of c.events({ fromSequence: 1 })) {
        items.push(e);
        if (items.length === 4) break;
      }
      const [lost, ...rest] = items;
      expect(lost).toMatchObject({ kind: "events-lost", requestedSequence: 1 });
      const first = lost?.kind === "events-lost" ? lost.firstAvailableSequence : -1;
      expect(first).toBeGreaterThan(1);
      expect(rest.map((e) => (e.kind === "event" ? e.sequence : -1))).toEqual([first, first + 1, first + 2]);
    } finally {
      c.close();
      await stopSidecar(small);
      rmSync(dir2, { recursive: true, force: true });
    }
  });
});

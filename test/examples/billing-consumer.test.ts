/**
 * The billing consumer survives restarts of itself and of the sidecar: every meter-overage
 * event is printed exactly once (count == events, no duplicate sequence), and the cursor file
 * holds the next sequence to process.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, expect, it } from "vitest";
import { createLimitrClient, type LimitrClient } from "../../src/client/index.js";
import { readCursor, runBillingConsumer, writeCursor } from "../../examples/billing-consumer/billing-consumer.js";
import { startSidecar, stopSidecar, type SidecarProcess } from "../e2e/helpers/sidecar-process.js";

const POLICY = ["--policy", "examples/policies/combined.yaml"];
let dir: string;
let sidecar: SidecarProcess;
let address: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "limitr-billing-"));
  sidecar = await startSidecar([...POLICY, "--data-dir", join(dir, "data")]);
  address = sidecar.grpcAddress;
});

afterAll(async () => {
  if (sidecar) await stopSidecar(sidecar);
  rmSync(dir, { recursive: true, force: true });
});

/** One running consumer process-equivalent: its own client, its cursor from the file. */
function startConsumer(cursorFile: string, lines: string[], warnings: string[] = [], at = address) {
  const limitr = createLimitrClient({ address: at, initialBackoffMs: 20, maxBackoffMs: 200 });
  const stop = new AbortController();
  const done = runBillingConsumer({ limitr, cursorFile, print: (l) => lines.push(l), warn: (w) => warnings.push(w), signal: stop.signal }).finally(() =>
    limitr.close(),
  );
  return {
    async stop() {
      stop.abort();
      await done;
    },
  };
}

const until = async (cond: () => boolean | Promise<boolean>, timeoutMs = 20_000): Promise<void> => {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`not reached in ${timeoutMs} ms: ${String(cond)}`);
    await sleep(20);
  }
};

/** The sequence the next event will get (the position a live subscription opens at). */
async function nextSequence(limitr: LimitrClient): Promise<number> {
  const stop = new AbortController();
  let next = 0;
  for await (const _ of limitr.events({ signal: stop.signal, onPosition: (n) => (next = n, stop.abort()) })) break;
  return next;
}

/** Whether retention has pruned the event at `sequence`. */
async function pruned(limitr: LimitrClient, sequence: number): Promise<boolean> {
  for await (const item of limitr.events({ fromSequence: sequence, reconnect: false })) return item.kind === "events-lost";
  return false;
}

it("writes the cursor atomically (write-then-rename, never a stray temp file)", () => {
  const f = join(dir, "unit-cursor.json");
  expect(readCursor(f)).toBe(1);
  writeCursor(f, 42);
  expect(readCursor(f)).toBe(42);
  expect(existsSync(`${f}.tmp`)).toBe(false);
});

it("prints one line per meter-overage across consumer and sidecar restarts, none twice", async () => {
  const cursorFile = join(dir, "cursor.json");
  const lines: string[] = [];
  const writer: LimitrClient = createLimitrClient({ address, retries: 100, maxBackoffMs: 200 });
  let expected = 0;
  /** Each call puts a new customer 10 tokens past its 2000 (Record is never denied): one overage. */
  const overage = async (): Promise<void> => {
    expected++;
    await writer.record(`bill_${expected}`, "gpt_tokens", 2000 + expected, { attributes: { model: "gpt-4o" } });
  };
  try {
    // Overages before the consumer ever ran are billed too (no cursor = from the oldest event).
    await overage();
    let consumer = startConsumer(cursorFile, lines);
    await overage();
    await overage();
    await until(() => lines.length === 3);

    // Consumer restart: overages while it is down are billed when it comes back.
    await consumer.stop();
    await overage();
    await overage();
    consumer = startConsumer(cursorFile, lines);
    await until(() => lines.length === 5);

    // Sidecar restart while the consumer is connected: it reconnects and resumes.
    expect((await stopSidecar(sidecar)).code).toBe(0);
    sidecar = await startSidecar([...POLICY, "--data-dir", join(dir, "data"), "--grpc-address", address]);
    await overage();
    await until(() => lines.length === 6);

    // Both down at once, an overage while the consumer is still down, both back.
    await consumer.stop();
    expect((await stopSidecar(sidecar)).code).toBe(0);
    sidecar = await startSidecar([...POLICY, "--data-dir", join(dir, "data"), "--grpc-address", address]);
    await overage();
    consumer = startConsumer(cursorFile, lines);
    await overage();
    await until(() => lines.length === 8);
    await consumer.stop();

    // Exactly the overage events of the log, in order, each once, with the right amounts.
    const logged: number[] = [];
    for await (const e of writer.events({ types: ["meter-overage"], fromSequence: 1 })) {
      if (e.kind === "event") logged.push(e.sequence);
      if (logged.length === expected) break;
    }
    const printed = lines.map((l) => Number(/^seq=(\d+) /.exec(l)?.[1]));
    expect(printed).toEqual(logged);
    expect(new Set(printed).size).toBe(expected);
    lines.forEach((l, i) => {
      const n = i + 1;
      expect(l).toMatch(new RegExp(`^seq=\\d+ time=\\S+Z customer=bill_${n} entitlement=gpt_tokens overage=${n} token price=${(n * 0.00002).toFixed(6)} USD$`));
    });
    expect(readCursor(cursorFile)).toBe(logged.at(-1)! + 1);
    expect(JSON.parse(readFileSync(cursorFile, "utf8"))).toEqual({ nextSequence: logged.at(-1)! + 1 });
  } finally {
    writer.close();
  }
});

it("moves its cursor past other events, so retention pruning them warns of nothing; a pruned overage warns", async () => {
  const keep = 20;
  const ret = await startSidecar([...POLICY, "--data-dir", join(dir, "retention-data"), "--event-retention-count", String(keep), "--maintenance-interval", "100ms"]);
  const writer = createLimitrClient({ address: ret.grpcAddress });
  const cursorFile = join(dir, "retention-cursor.json");
  const lines: string[] = [];
  const warnings: string[] = [];
  /** Events a billing consumer never sees: a user well under its limit. */
  const others = async (n: number): Promise<void> => {
    for (let i = 0; i < n; i++) await writer.record("steady_user", "gpt_tokens", 1);
  };
  try {
    await writer.record("ret_1", "gpt_tokens", 2001);
    let consumer = startConsumer(cursorFile, lines, warnings, ret.grpcAddress);
    await until(() => lines.length === 1);
    const afterOverage = readCursor(cursorFile);
    await others(3 * keep);
    const end = await nextSequence(writer);
    // The sidecar reports the filtered stream's position after 5 quiet seconds past others' events.
    await until(() => readCursor(cursorFile) >= end, 15_000);
    await consumer.stop();
    await until(() => pruned(writer, afterOverage));

    // Nothing billable was pruned: no warning, and the next overage is billed.
    consumer = startConsumer(cursorFile, lines, warnings, ret.grpcAddress);
    await writer.record("ret_2", "gpt_tokens", 2002);
    await until(() => lines.length === 2);
    expect(warnings).toEqual([]);

    // An overage pruned while the consumer was down is a loss it names.
    await consumer.stop();
    const lost = readCursor(cursorFile);
    await writer.record("ret_3", "gpt_tokens", 2003);
    const overageAtMost = (await nextSequence(writer)) - 1;
    await others(3 * keep);
    await until(() => pruned(writer, overageAtMost));
    consumer = startConsumer(cursorFile, lines, warnings, ret.grpcAddress);
    await until(() => warnings.length === 1);
    await consumer.stop();
    expect(warnings[0]).toMatch(new RegExp(`^events ${lost}\\.\\.\\d+ were pruned before being billed$`));
    expect(lines).toHaveLength(2);
  } finally {
    writer.close();
    await stopSidecar(ret);
  }
});

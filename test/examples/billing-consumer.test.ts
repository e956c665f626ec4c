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
function startConsumer(cursorFile: string, lines: string[]) {
  const limitr = createLimitrClient({ address, initialBackoffMs: 20, maxBackoffMs: 200 });
  const stop = new AbortController();
  const done = runBillingConsumer({ limitr, cursorFile, print: (l) => lines.push(l), signal: stop.signal }).finally(() => limitr.close());
  return {
    async stop() {
      stop.abort();
      await done;
    },
  };
}

const until = async (cond: () => boolean): Promise<void> => {
  while (!cond()) await sleep(20);
};

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

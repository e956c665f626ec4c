/**
 * The chat backend, seats and storage examples against the real, built sidecar serving
 * examples/policies/combined.yaml (what `npm start` serves and the examples expect).
 */
import { mkdtempSync, rmSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLimitrClient, type LimitrClient } from "../../src/client/index.js";
import { countTokens, createChatServer, fakeModel } from "../../examples/chat-backend/chat-server.js";
import { createSeats } from "../../examples/seats/seats.js";
import { formatMb, upload } from "../../examples/storage/storage.js";
import { startSidecar, stopSidecar, type SidecarProcess } from "../e2e/helpers/sidecar-process.js";

let sidecar: SidecarProcess;
let limitr: LimitrClient;
let dir: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "limitr-examples-"));
  sidecar = await startSidecar(["--policy", "examples/policies/combined.yaml", "--data-dir", dir]);
  limitr = createLimitrClient({ address: sidecar.grpcAddress });
});

afterAll(async () => {
  limitr?.close();
  if (sidecar) await stopSidecar(sidecar);
  rmSync(dir, { recursive: true, force: true });
});

describe("chat backend", () => {
  it("reserves the estimate, settles real usage, and answers 429 with reason and reset time", async () => {
    const server = createChatServer(limitr).listen(0, "127.0.0.1");
    await new Promise((resolve) => server.once("listening", resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/chat`;
    const chat = async (body: object) => {
      const res = await fetch(url, { method: "POST", body: JSON.stringify(body) });
      return { status: res.status, retryAfter: res.headers.get("retry-after"), body: (await res.json()) as Record<string, unknown> };
    };
    try {
      const prompt = "x".repeat(400); // 100 prompt tokens, answer capped at maxTokens
      expect(await fakeModel(prompt, 150)).toMatchObject({ promptTokens: 100, completionTokens: 150 });
      const ok = await chat({ userId: "chat_u", model: "gpt", prompt, maxTokens: 150 });
      expect(ok).toMatchObject({ status: 200, body: { usage: { promptTokens: 100, completionTokens: 150, total: 250 }, remaining: 1750 } });
      // Only the real usage stays counted; the hold (100 + 150 estimated) is gone.
      expect((await limitr.getMeters("chat_u", ["gpt_tokens"]))[0]).toMatchObject({ value: 250, held: 0 });

      // 1750 left: a request estimated at 100 + 1700 = 1800 is refused before calling the model.
      const denied = await chat({ userId: "chat_u", model: "gpt", prompt, maxTokens: 1700 });
      const meter = (await limitr.getMeters("chat_u", ["gpt_tokens"]))[0]!;
      expect(denied).toMatchObject({ status: 429, body: { reason: "HARD_LIMIT", remaining: 1750, limit: 2000, resetAt: meter.nextReset!.toISOString() } });
      expect(Number(denied.retryAfter)).toBeGreaterThan(29 * 86_400);
      expect(meter).toMatchObject({ value: 250, held: 0 });

      // Claude has its own meter; a bad request is a 400.
      expect((await chat({ userId: "chat_u", model: "claude", prompt: "hi", maxTokens: 10 })).body).toMatchObject({ usage: { total: countTokens("hi") + 2 } });
      expect((await chat({ userId: "chat_u", model: "llama", prompt: "hi" })).status).toBe(400);
      expect((await fetch(url, { method: "POST", body: "{not json" })).status).toBe(400);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });
});

describe("chat backend, bad requests and a sidecar restart", () => {
  /** The chat server on a loopback port over `client`, with `model`; closed after `body`. */
  async function withChat(client: LimitrClient, model: typeof fakeModel, body: (chat: (req: unknown) => Promise<{ status: number; body: Record<string, unknown> }>) => Promise<void>): Promise<void> {
    const server = createChatServer(client, model).listen(0, "127.0.0.1");
    await new Promise((resolve) => server.once("listening", resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/chat`;
    try {
      await body(async (req) => {
        const res = await fetch(url, { method: "POST", body: JSON.stringify(req) });
        return { status: res.status, body: (await res.json()) as Record<string, unknown> };
      });
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  }

  it("answers 400 with a message for a request the caller must fix, and reserves nothing", async () => {
    await withChat(limitr, fakeModel, async (chat) => {
      const ok = { userId: "chat_bad", prompt: "hi", maxTokens: 10 };
      for (const [req, why] of [
        [{ ...ok, maxTokens: -100 }, /maxTokens must be a positive integer/],
        [{ ...ok, maxTokens: "abc" }, /maxTokens must be a positive integer/],
        [{ ...ok, maxTokens: 1.5 }, /maxTokens must be a positive integer/],
        [{ ...ok, userId: 42 }, /userId must be a non-empty string/],
        [{ ...ok, prompt: ["hi"] }, /prompt must be a non-empty string/],
        [null, /the body must be a JSON object/],
        [[ok], /the body must be a JSON object/],
        // Refused by the sidecar (ids are at most 512 bytes): the caller's mistake all the same.
        [{ ...ok, userId: "u".repeat(600) }, /customer_id/],
      ] as const) {
        const res = await chat(req);
        expect(res.status, JSON.stringify(req).slice(0, 80)).toBe(400);
        expect(JSON.stringify(res.body)).toMatch(why);
      }
      expect((await limitr.getMeters("chat_bad", ["gpt_tokens"]))[0]).toMatchObject({ value: 0, held: 0 });
    });
  });

  it("counts the tokens used when the sidecar restarts while the model runs", async () => {
    const dir2 = mkdtempSync(join(tmpdir(), "limitr-examples-restart-"));
    const flags = ["--policy", "examples/policies/combined.yaml", "--data-dir", dir2];
    let side = await startSidecar(flags);
    const address = side.grpcAddress;
    const client = createLimitrClient({ address });
    let restarted: Promise<void> | undefined;
    // The sidecar is killed (kill -9) while the model runs and is back ~1 s later, after the answer.
    const crashingModel: typeof fakeModel = async (prompt, maxTokens) => {
      side.kill("SIGKILL");
      await side.exited;
      restarted = startSidecar([...flags, "--grpc-address", address]).then((s) => void (side = s));
      return fakeModel(prompt, maxTokens);
    };
    try {
      await withChat(client, crashingModel, async (chat) => {
        const res = await chat({ userId: "chat_restart", prompt: "x".repeat(40), maxTokens: 50 });
        expect(res).toMatchObject({ status: 200, body: { usage: { total: 10 + 20 } } });
      });
      await restarted;
      expect((await client.getMeters("chat_restart", ["gpt_tokens"]))[0]).toMatchObject({ value: 30, held: 0 });
    } finally {
      client.close();
      await restarted?.catch(() => undefined);
      await stopSidecar(side);
      rmSync(dir2, { recursive: true, force: true });
    }
  });
});

describe("seats", () => {
  it("fills 3 seats on free, denies the 4th, admits it after the upgrade to pro, frees a seat on removal", async () => {
    const seats = createSeats(limitr);
    await seats.createOrg("acme_seats", "free");
    const results = [];
    for (const u of ["alice", "bob", "carol", "dave"]) results.push(await seats.invite("acme_seats", u));
    expect(results.map((r) => [r.invited, r.reason, r.seatsUsed, r.seatsLimit])).toEqual([
      [true, "OK", 1, 3],
      [true, "OK", 2, 3],
      [true, "OK", 3, 3],
      [false, "HARD_LIMIT", 3, 3],
    ]);
    expect(await seats.invite("acme_seats", "alice")).toMatchObject({ invited: true, reason: "ALREADY_MEMBER" });
    await seats.changePlan("acme_seats", "pro");
    expect(await seats.invite("acme_seats", "dave")).toMatchObject({ invited: true, seatsUsed: 4, seatsLimit: 10 });
    expect(await seats.remove("acme_seats", "bob")).toBe(3);
    expect(await seats.remove("acme_seats", "bob")).toBeUndefined();
    expect(seats.members("acme_seats")).toEqual(["alice", "carol", "dave"]);
    const [orgMeter] = await limitr.getMeters("alice", ["seats"]);
    expect(orgMeter).toMatchObject({ owner: "acme_seats", value: 3, limit: 10, nextReset: undefined });
  });
});

describe("storage", () => {
  it("counts MB/GB/GiB into the org's daily MB quota and refuses past 1GB until 00:00 UTC", async () => {
    await limitr.upsertCustomer({ id: "acme_storage", type: "org", plan: "free" });
    const r1 = await upload(limitr, "acme_storage", "up_1", "250MB");
    const r2 = await upload(limitr, "acme_storage", "up_2", "0.5GiB");
    const r3 = await upload(limitr, "acme_storage", "up_1", "0.2GB");
    const r4 = await upload(limitr, "acme_storage", "up_2", "100MB");
    expect([r1, r2, r3].map((r) => r.accepted)).toEqual([true, true, true]);
    expect(r3.usedMb).toBeCloseTo(250 + 536.870912 + 200, 9);
    expect(r4).toMatchObject({ accepted: false, reason: "HARD_LIMIT", limitMb: 1000 });
    expect(r4.usedMb).toBeCloseTo(986.870912, 9);
    const reset = r4.resetsAt!;
    expect([reset.getUTCHours(), reset.getUTCMinutes(), reset.getUTCSeconds(), reset.getUTCMilliseconds()]).toEqual([0, 0, 0, 0]);
    expect(reset.getTime() - Date.now()).toBeLessThanOrEqual(86_400_000);
    expect(formatMb(986.870912)).toBe("986.9 MB");
    expect(formatMb(1500)).toBe("1.50 GB");
  });
});

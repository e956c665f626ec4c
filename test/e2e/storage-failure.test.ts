/**
 * A storage failure reaches the caller as RESOURCE_EXHAUSTED with a clear message, and leaves
 * no half-applied decision: the real gRPC server over the real engine and an LMDB store capped
 * in size, so a commit fails for real inside LMDB.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createEngine } from "../../src/engine/index.js";
import { createSidecarServer, type SidecarServer } from "../../src/server/index.js";
import { createLmdbStore, type LmdbStore } from "../../src/store/index.js";
import { examplePolicy } from "../server/harness.js";
import { connectClients, statusOf, unary, type Obj, type SidecarClients } from "./helpers/clients.js";

const quiet = { info: () => undefined, warn: () => undefined, error: () => undefined };

describe("storage full", () => {
  const dir = mkdtempSync(join(tmpdir(), "limitr-full-"));
  let store: LmdbStore;
  let server: SidecarServer;
  let c: SidecarClients;

  beforeAll(async () => {
    store = createLmdbStore({ path: join(dir, "data"), maxDataBytes: 256 * 1024 });
    const policy = examplePolicy("combined.yaml");
    const engine = createEngine({ store, policy: () => policy, clock: Date.now, newId: randomUUID });
    server = createSidecarServer({
      engine,
      events: store,
      policyStatus: () => ({ version: policy.version, appliedAt: 0, source: "test", lastErrors: [], lastRejectedAt: undefined, rejectionsSinceApplied: 0 }),
      state: { exportState: () => store.exportState(), importState: (r) => store.importState(r) },
      logger: quiet,
    });
    c = connectClients(await server.listen("127.0.0.1:0"));
    server.setServing(true);
  });
  afterAll(async () => {
    c.close();
    await server.shutdown(1000);
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("answers RESOURCE_EXHAUSTED naming the cause, stores nothing of the failed call, and keeps serving", async () => {
    let failure: Awaited<ReturnType<typeof statusOf>> | undefined;
    let failedCustomer = "";
    // New customers with a long alt id each: customer, alt-id, meter, event and idempotency rows.
    for (let i = 0; i < 5000 && failure === undefined; i++) {
      const id = `user-${i}`;
      try {
        await unary(c.decision, "Allow", {
          customer_id: id,
          items: [{ entitlement: "gpt_tokens", amount: 1 }],
          customer_hint: { alt_ids: [`api-key-${i}-${"x".repeat(200)}`] },
          idempotency_key: `k-${i}`,
        });
      } catch (e) {
        failure = e as Awaited<ReturnType<typeof statusOf>>;
        failedCustomer = id;
      }
    }
    expect(failure, "the store never filled up").toBeDefined();
    expect(failure?.code).toBe(8); // RESOURCE_EXHAUSTED
    expect(failure?.details).toMatch(/storage full/);

    // Nothing of the failed decision is stored: no customer, no alt id, no meter, no event, no key.
    const missing = await statusOf(unary(c.admin, "GetCustomer", { customer_id: failedCustomer }));
    expect(missing.code).toBe(5); // NOT_FOUND
    const events = await unary<{ events: Obj[] }>(c.admin, "ListEvents", { customer_id: failedCustomer, page_size: 10 });
    expect(events.events).toEqual([]);

    // Reads still work, and the customers stored before the failure are intact.
    const previous = `user-${Number(failedCustomer.slice(5)) - 1}`;
    const meters = await unary<{ meters: Obj[] }>(c.decision, "GetMeters", { customer_id: previous, entitlements: ["gpt_tokens"] });
    expect(meters.meters[0]).toMatchObject({ value: 1 });
    expect(await unary(c.health, "Check", { service: "" })).toEqual({ status: "SERVING" });
  });
});

/**
 * The README's grpcurl session, call for call, against the policy `npm start` serves
 * (examples/policies/combined.yaml): the seed story end to end through the built binary.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectClients, unary, type Obj, type SidecarClients } from "./helpers/clients.js";
import { startSidecar, stopSidecar, type SidecarProcess } from "./helpers/sidecar-process.js";
import { makeTestDir } from "./helpers/test-policy.js";

describe("the README session on combined.yaml", () => {
  const t = makeTestDir();
  let s: SidecarProcess;
  let c: SidecarClients;
  beforeAll(async () => {
    s = await startSidecar(["--policy", "examples/policies/combined.yaml", "--data-dir", t.dataDir]);
    c = connectClients(s.grpcAddress);
  });
  afterAll(async () => {
    c.close();
    await stopSidecar(s);
    t.cleanup();
  });

  const allow = (req: Obj) => unary(c.decision, "Allow", req);
  const meter = (res: Obj, i = 0) => (res["items"] as Obj[])[i] as Obj;

  it("walks tokens, seats, storage in units, an upgrade by Stripe id, meters and events", async () => {
    const tokens = await allow({
      customer_id: "alice",
      items: [{ entitlement: "gpt_tokens", amount: 600 }],
      customer_hint: { refs: ["acme"] },
      attributes: { model: "gpt-4o" },
    });
    expect(tokens).toMatchObject({ allowed: true, reason: "REASON_OK", customer_id: "alice", plan: "free" });
    expect(meter(tokens)).toMatchObject({ owner: "alice", value: 600, limit: 2000, remaining: 1400, mode: "LIMIT_MODE_HARD" });

    await unary(c.admin, "UpsertCustomer", { customer_id: "acme", type: "org", alt_ids: ["cus_stripe_123"] });
    // Seats: alice's seat is on acme's meter; bob and carol take the other two free seats.
    for (const user of ["alice", "bob", "carol"]) {
      const seat = await allow({ customer_id: user, items: [{ entitlement: "seats", amount: 1 }], customer_hint: { refs: ["acme"] } });
      expect(seat).toMatchObject({ allowed: true });
      expect(meter(seat)).toMatchObject({ owner: "acme" });
    }
    const fourth = await allow({ customer_id: "dave", items: [{ entitlement: "seats", amount: 1 }], customer_hint: { refs: ["acme"] } });
    expect(fourth).toMatchObject({ allowed: false, reason: "REASON_HARD_LIMIT", denied_item: 0 });
    expect(meter(fourth)).toMatchObject({ owner: "acme", value: 3, limit: 3 });

    const storage = await allow({ customer_id: "alice", items: [{ entitlement: "storage_mb", amount: 250, unit: "MiB" }] });
    expect(meter(storage)).toMatchObject({ owner: "acme", unit: "MB", value: 262.144, limit: 1000 });

    const upgraded = await unary<{ customer: Obj }>(c.admin, "SetCustomerPlan", { customer_id: "cus_stripe_123", plan: "pro" });
    expect(upgraded.customer).toMatchObject({ id: "acme", plan: "pro", effective_plan: "pro" });
    const fourthAgain = await allow({ customer_id: "dave", items: [{ entitlement: "seats", amount: 1 }] });
    expect(fourthAgain).toMatchObject({ allowed: true, plan: "pro" }); // dave inherits acme's plan
    expect(meter(fourthAgain)).toMatchObject({ value: 4, limit: 10 }); // usage kept across the upgrade

    const meters = await unary<{ meters: Obj[] }>(c.decision, "GetMeters", { customer_id: "alice" });
    const byName = Object.fromEntries(meters.meters.map((m) => [m["entitlement"], m]));
    expect(byName["gpt_tokens"]).toMatchObject({ value: 600, limit: 50000, mode: "LIMIT_MODE_SOFT" }); // pro's limit now
    expect(byName["storage_mb"]).toMatchObject({ value: 262.144, limit: 10000 });
    expect(byName["priority_support"]).toMatchObject({ kind: "METER_KIND_FEATURE", granted: true });

    const events = await unary<{ events: Obj[] }>(c.admin, "ListEvents", { customer_id: "alice", types: ["EVENT_TYPE_METER_CHANGED"], page_size: 10 });
    const first = events.events[0]?.["meter"] as Obj;
    expect(first).toMatchObject({ entitlement: "gpt_tokens", diff: 600, attributes: { model: "gpt-4o" }, policy_version: tokens["policy_version"] });

    const status = await unary(c.admin, "GetPolicyStatus", {});
    expect(status).toMatchObject({ version: tokens["policy_version"], rejections_since_applied: 0 });
    expect(await unary(c.health, "Check", { service: "" })).toEqual({ status: "SERVING" });
  });
});

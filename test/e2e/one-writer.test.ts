/**
 * One data dir, one writer (docs/kubernetes.md). LMDB would let a second sidecar write the same
 * dir, numbering its events from the same counter as the first: a sidecar started on a dir that
 * another one serves takes it over once it can serve, and the first refuses every write from then
 * on and stops reporting ready. A start that fails takes nothing over. An export run next to a
 * serving sidecar reads without taking anything over.
 */
import * as grpc from "@grpc/grpc-js";
import { afterAll, expect, it } from "vitest";
import { connectClients, statusOf, unary, type Obj, type SidecarClients } from "./helpers/clients.js";
import { runCli, spawnSidecar, startSidecar, stopSidecar, type SidecarProcess } from "./helpers/sidecar-process.js";
import { makeTestDir } from "./helpers/test-policy.js";

const t = makeTestDir();
const broken = makeTestDir("policy:\n  plans: { basic: { entitlements: { x: { limit: { credit: nope, value: 1 } } } } }\n");
const sidecars: SidecarProcess[] = [];
const clients: SidecarClients[] = [];
afterAll(async () => {
  for (const c of clients) c.close();
  for (const s of sidecars) await stopSidecar(s);
  t.cleanup();
  broken.cleanup();
});

async function serve(): Promise<SidecarClients> {
  const s = await startSidecar(["--policy", t.policyPath, "--data-dir", t.dataDir]);
  sidecars.push(s);
  const c = connectClients(s.grpcAddress);
  clients.push(c);
  return c;
}

const record = (c: SidecarClients): Promise<Obj> => unary(c.decision, "Record", { customer_id: "u", items: [{ entitlement: "counter", amount: 1 }] });

const healthOf = (c: SidecarClients): Promise<Obj> => unary(c.health, "Check", { service: "" });

it("a second sidecar on the same data dir takes it over; the first refuses writes, and no event is numbered twice", async () => {
  const first = await serve();
  await record(first);

  // Starts that fail take nothing over: they used to claim the dir on opening it, before the
  // policy was read or a port bound, and leave the serving sidecar refusing every write.
  const badPolicy = runCli(["serve", "--policy", broken.policyPath, "--data-dir", t.dataDir, "--grpc-address", "127.0.0.1:0", "--http-address", "off"]);
  expect(badPolicy.status, badPolicy.stderr).toBe(1);
  expect(badPolicy.stderr).toContain("no valid policy at");
  const busyPort = spawnSidecar(["--policy", t.policyPath, "--data-dir", t.dataDir, "--grpc-address", String(sidecars[0]?.grpcAddress), "--http-address", "off"]);
  expect((await busyPort.exited).code).toBe(1);
  expect(busyPort.logs.some((l) => String(l["msg"]).startsWith("cannot listen"))).toBe(true);
  await record(first);
  // An export beside it reads the dir and leaves it the writer.
  const exported = runCli(["export", "--data-dir", t.dataDir]);
  expect(exported.status, exported.stderr).toBe(0);
  expect(exported.stdout).toContain('"counter"');
  await record(first);

  const second = await serve();
  const refused = await statusOf(record(first));
  expect(refused.code).toBe(grpc.status.FAILED_PRECONDITION);
  expect(refused.details).toMatch(/another process \(pid \d+, .*\) opened the data dir .* run one sidecar per data dir/);
  // The operator sees it in the first sidecar's log, not only its callers.
  await expect.poll(() => sidecars[0]?.logs.some((l) => l["msg"] === "rpc failed" && l["code"] === "FAILED_PRECONDITION")).toBe(true);
  // And it no longer looks ready, so probes take it out of service.
  expect(sidecars[0]?.logs.filter((l) => l["msg"] === "the data dir was taken over by another process; not serving")).toHaveLength(1);
  expect(await healthOf(first)).toEqual({ status: "NOT_SERVING" });
  expect(await healthOf(second)).toEqual({ status: "SERVING" });
  await record(second);
  await record(second);

  const meters = await unary<{ meters: Obj[] }>(second.decision, "GetMeters", { customer_id: "u", entitlements: ["counter"] });
  expect(meters.meters[0]?.["value"]).toBe(5);
  const { events } = await unary<{ events: Obj[] }>(second.admin, "ListEvents", { customer_id: "u", types: ["EVENT_TYPE_METER_CHANGED"], page_size: 100 });
  expect(events.map((e) => Number(e["sequence"]))).toEqual([...new Set(events.map((e) => Number(e["sequence"])))]);
  expect(events.map((e) => Number((e["meter"] as Obj)["new_value"]))).toEqual([1, 2, 3, 4, 5]);
});

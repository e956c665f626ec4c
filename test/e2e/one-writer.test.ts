/**
 * One data dir, one writer (docs/kubernetes.md). LMDB would let a second sidecar write the same
 * dir, numbering its events from the same counter as the first: a sidecar started on a dir that
 * another one serves takes it over, and the first refuses every write from then on. An export run
 * next to a serving sidecar reads without taking anything over.
 */
import * as grpc from "@grpc/grpc-js";
import { afterAll, expect, it } from "vitest";
import { connectClients, statusOf, unary, type Obj, type SidecarClients } from "./helpers/clients.js";
import { runCli, startSidecar, stopSidecar, type SidecarProcess } from "./helpers/sidecar-process.js";
import { makeTestDir } from "./helpers/test-policy.js";

const t = makeTestDir();
const sidecars: SidecarProcess[] = [];
const clients: SidecarClients[] = [];
afterAll(async () => {
  for (const c of clients) c.close();
  for (const s of sidecars) await stopSidecar(s);
  t.cleanup();
});

async function serve(): Promise<SidecarClients> {
  const s = await startSidecar(["--policy", t.policyPath, "--data-dir", t.dataDir]);
  sidecars.push(s);
  const c = connectClients(s.grpcAddress);
  clients.push(c);
  return c;
}

const record = (c: SidecarClients): Promise<Obj> => unary(c.decision, "Record", { customer_id: "u", items: [{ entitlement: "counter", amount: 1 }] });

it("a second sidecar on the same data dir takes it over; the first refuses writes, and no event is numbered twice", async () => {
  const first = await serve();
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
  await record(second);
  await record(second);

  const meters = await unary<{ meters: Obj[] }>(second.decision, "GetMeters", { customer_id: "u", entitlements: ["counter"] });
  expect(meters.meters[0]?.["value"]).toBe(4);
  const { events } = await unary<{ events: Obj[] }>(second.admin, "ListEvents", { customer_id: "u", types: ["EVENT_TYPE_METER_CHANGED"], page_size: 100 });
  expect(events.map((e) => Number(e["sequence"]))).toEqual([...new Set(events.map((e) => Number(e["sequence"])))]);
  expect(events.map((e) => Number((e["meter"] as Obj)["new_value"]))).toEqual([1, 2, 3, 4]);
});

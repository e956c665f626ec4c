/**
 * ImportState over gRPC against the real store: a refused record ends the call with
 * INVALID_ARGUMENT naming it as `requests[i].record...`, whichever part refuses it (the decoding,
 * the rules records keep, the storage), and the records before it stay imported.
 */
import * as grpc from "@grpc/grpc-js";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { parseServeConfig } from "../../src/cli/config.js";
import { createLogger } from "../../src/cli/logger.js";
import { startSidecar, type RunningSidecar } from "../../src/cli/start-sidecar.js";
import { connectClients, unary, type Obj, type SidecarClients } from "./helpers/clients.js";

const POLICY = "policy:\n  credits: { token: { label: Token } }\n  plans:\n    free: { default: true, entitlements: { chat: { limit: { credit: token, value: 1000 } } } }\n";

let dir: string;
let running: RunningSidecar;
let c: SidecarClients;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "limitr-import-"));
  writeFileSync(join(dir, "policy.yaml"), POLICY);
  const config = parseServeConfig(
    ["--policy", join(dir, "policy.yaml"), "--data-dir", join(dir, "data"), "--grpc-address", "127.0.0.1:0", "--http-address", "off", "--policy-poll-interval", "1hr"],
    {},
  );
  running = await startSidecar(config, createLogger({ level: "error", write: () => undefined }));
  c = connectClients(running.grpcAddress);
});

afterAll(async () => {
  c.close();
  await running.stop();
  rmSync(dir, { recursive: true, force: true });
});

function importState(records: readonly Obj[]): Promise<{ ok?: Obj; err?: grpc.ServiceError }> {
  return new Promise((resolve) => {
    const call = (c.admin as unknown as { ImportState(cb: (e: grpc.ServiceError | null, r: Obj) => void): grpc.ClientWritableStream<Obj> }).ImportState((err, ok) =>
      resolve(err ? { err } : { ok }),
    );
    for (const record of records) call.write({ record });
    call.end();
  });
}

const ts = { seconds: "1800000000", nanos: 0 };
const meter = (owner: string, extra: Obj = {}): Obj => ({ meter: { owner, entitlement: "chat", credit: "token", period_start: ts, value: "5", ...extra } });

it("names a refused record as requests[i].record, whichever check refuses it, keeping the records before it", async () => {
  await unary(c.admin, "UpsertCustomer", { customer_id: "bob", alt_ids: ["stripe_bob"] });
  const cases: [Obj, string][] = [
    [{ customer: { id: "eve", alt_ids: ["stripe_bob"] } }, 'requests[1].record.customer.alt_ids[0]: alt id "stripe_bob" already belongs to customer "bob"'],
    [{ customer: { id: "x".repeat(600) } }, "requests[1].record.customer.id: must be at most 512 bytes (UTF-8)"],
    [meter("m", { holds: [{ reservation_id: "r", amount: "-100", expires_at: ts }] }), "requests[1].record.meter.holds[0].amount: must not be negative"],
    [meter("m", { value: "1e399" }), "requests[1].record.meter.value: is too large"],
    [meter("m", { period_start: { seconds: "1800000000", nanos: -999 } }), "requests[1].record.meter.period_start: is not a valid timestamp (seconds 1800000000, nanos -999)"],
    [meter("m", { value: "lots" }), 'requests[1].record.meter.value: must be a decimal number, got "lots"'],
  ];
  for (const [i, [bad, message]] of cases.entries()) {
    const before = `before${i}`;
    const r = await importState([{ customer: { id: before } }, bad, { customer: { id: `after${i}` } }]);
    expect(r.err?.code, message).toBe(grpc.status.INVALID_ARGUMENT);
    expect(r.err?.details).toBe(message);
    expect(await unary(c.admin, "GetCustomer", { customer_id: before })).toMatchObject({ customer: { id: before } });
  }
  const bob = await unary<{ customer: Obj }>(c.admin, "GetCustomer", { customer_id: "stripe_bob" });
  expect(bob.customer).toMatchObject({ id: "bob", alt_ids: ["stripe_bob"] });
  const m = await unary<{ meters: Obj[] }>(c.decision, "GetMeters", { customer_id: "m", entitlements: ["chat"] });
  expect(m.meters[0]).toMatchObject({ value: 0, held: 0 });
});

/** Polls `read` until `done` holds of its answer, at most ~3 s; resolves with the last answer. */
async function until<T>(read: () => Promise<T>, done: (r: T) => boolean): Promise<T> {
  let r = await read();
  for (let i = 0; i < 60 && !done(r); i++) {
    await new Promise((resolve) => setTimeout(resolve, 50));
    r = await read();
  }
  return r;
}

it("applies a record as it arrives: calls made while the stream stays open see it, and the end of the stream does not undo them", async () => {
  let finished!: (r: { ok?: Obj; err?: grpc.ServiceError }) => void;
  const result = new Promise<{ ok?: Obj; err?: grpc.ServiceError }>((resolve) => (finished = resolve));
  const call = (c.admin as unknown as { ImportState(cb: (e: grpc.ServiceError | null, r: Obj) => void): grpc.ClientWritableStream<Obj> }).ImportState((err, ok) =>
    finished(err ? { err } : { ok }),
  );
  const getCustomer = (id: string): Promise<Obj> => unary<Obj>(c.admin, "GetCustomer", { customer_id: id }).catch((e: grpc.ServiceError) => ({ code: e.code }));
  const chat = async (): Promise<unknown> => (await unary<{ meters: Obj[] }>(c.decision, "GetMeters", { customer_id: "u9", entitlements: ["chat"] })).meters[0]?.value;

  call.write({ record: { customer: { id: "impA", alt_ids: ["sk_shared"] } } });
  expect(await until(() => getCustomer("sk_shared"), (r) => r.customer !== undefined)).toMatchObject({ customer: { id: "impA" } });
  const taken = await unary(c.admin, "UpsertCustomer", { customer_id: "custB", alt_ids: ["sk_shared"] }).catch((e: grpc.ServiceError) => e);
  expect((taken as grpc.ServiceError).code).toBe(grpc.status.ALREADY_EXISTS);

  call.write({ record: meter("u9", { value: "10" }) });
  expect(await until(chat, (v) => v === 10)).toBe(10);
  const allowed = await unary<{ items: Obj[] }>(c.decision, "Allow", { customer_id: "u9", items: [{ entitlement: "chat", amount: 100 }] });
  expect(allowed.items[0]).toMatchObject({ value: 110 });

  call.end();
  expect((await result).ok).toEqual({ count: "2" });
  expect(await chat()).toBe(110);
  expect(await getCustomer("sk_shared")).toMatchObject({ customer: { id: "impA", alt_ids: ["sk_shared"] } });
  expect(await getCustomer("custB")).toEqual({ code: grpc.status.NOT_FOUND });
});

/**
 * SPEC §7: on SIGTERM the sidecar finishes in-flight calls. A call is finished when its answer has
 * left, not when it was decided: an Allow that was counted and then cancelled at shutdown looks
 * to its caller like one that was not, and a caller that retries it without an idempotency key
 * counts it twice. Here the answers are held back on the way to the client (its reads stalled:
 * a GC pause, CPU throttling), so most of them wait in the sidecar behind HTTP/2 flow control
 * when the SIGTERM comes. And with nothing left to answer, it stops at once, not at the end of
 * the grace period.
 */
import { afterEach, describe, expect, it } from "vitest";
import { startPausableProxy, type PausableProxy } from "../client/pausable-proxy.js";
import type { ServiceError } from "@grpc/grpc-js";
import { createLimitrClient } from "../../src/client/index.js";
import { allowOne, connectClients, unary, type Obj, type SidecarClients } from "./helpers/clients.js";
import { waitFor } from "./helpers/reload-fixture.js";
import { runCli, startSidecar, type SidecarProcess } from "./helpers/sidecar-process.js";
import { makeTestDir, type TestDir } from "./helpers/test-policy.js";

const CALLS = 1_000;

let t: TestDir | undefined;
let sidecar: SidecarProcess | undefined;
let proxy: PausableProxy | undefined;
const clients: SidecarClients[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await proxy?.close();
  if (sidecar !== undefined && sidecar.child.exitCode === null && sidecar.child.signalCode === null) {
    sidecar.kill("SIGKILL");
    await sidecar.exited;
  }
  t?.cleanup();
  proxy = sidecar = t = undefined;
});

describe("SIGTERM with answers still on their way", () => {
  it("every counted Allow is answered before the sidecar exits 0", async () => {
    t = makeTestDir();
    const s = (sidecar = await startSidecar(["--policy", t.policyPath, "--data-dir", t.dataDir]));
    const p = (proxy = await startPausableProxy(s.grpcAddress));
    const direct = connectClients(s.grpcAddress);
    const slow = connectClients(p.address);
    clients.push(direct, slow);
    expect(await allowOne(slow, "warm", "counter", 1)).toMatchObject({ allowed: true });

    p.pause();
    const answers = Array.from({ length: CALLS }, () =>
      allowOne(slow, "c1", "counter", 1).then(
        (res) => ({ allowed: res.allowed }),
        (e: ServiceError) => ({ code: e.code, details: e.details }),
      ),
    );
    // Every one of them decided and counted, as a direct connection sees.
    await waitFor(
      `all ${CALLS} Allows counted`,
      async () => {
        const res = await unary(direct.decision, "GetMeters", { customer_id: "c1", entitlements: ["counter"] });
        return ((res.meters as Obj[])[0]?.value as number | undefined) === CALLS ? true : undefined;
      },
      10_000,
    );
    direct.close();

    s.kill("SIGTERM");
    await s.logLine("shutting down");
    // A second SIGTERM (docker stop, an impatient operator) must not cut the drain short.
    s.kill("SIGTERM");
    // Well past any fixed pause: the sidecar must still be waiting for the answers to leave.
    await new Promise((r) => setTimeout(r, 500));
    expect(s.child.exitCode).toBeNull();
    expect(s.logs.filter((l) => String(l.msg).startsWith("signal received")).map((l) => l.msg)).toEqual(["signal received", "signal received; already stopping"]);
    p.resume();

    const outcomes = await Promise.all(answers);
    const failed = outcomes.filter((o) => !("allowed" in o) || o.allowed !== true);
    expect(failed.length, `answers lost: ${JSON.stringify(failed.slice(0, 3))}`).toBe(0);
    expect(await s.exited).toEqual({ code: 0, signal: null });
    expect(s.logs.at(-1)?.msg).toBe("stopped"); // LMDB closed
  });
});

describe("SIGTERM just after a client dropped its connection", () => {
  it("exits 0 well within the grace period, with what it answered kept", async () => {
    t = makeTestDir();
    const s = (sidecar = await startSidecar(["--policy", t.policyPath, "--data-dir", t.dataDir, "--shutdown-grace-ms", "30000"]));
    // The bundled client: its close() drops the connection with a GOAWAY carrying CANCEL, as
    // connect-node does, not NO_ERROR as grpc-js does.
    const client = createLimitrClient({ address: s.grpcAddress, retries: 0 });
    let answered = 0;
    const allow = (): Promise<void> =>
      client.allow("c1", "counter", 1).then(
        (d) => void (d.allowed && answered++),
        () => undefined,
      );
    await allow();
    const inFlight = Array.from({ length: 20 }, allow);
    const events = client.events()[Symbol.asyncIterator]();
    const watching = events.next().catch(() => undefined);

    // The client goes and the signal comes while the sidecar's event loop is busy (here: stopped),
    // so both are handled in one turn, the signal right after the connection was dropped.
    s.kill("SIGSTOP");
    client.close();
    await Promise.all([...inFlight, watching]);
    await new Promise((r) => setTimeout(r, 100)); // the client's GOAWAY and FIN reach the sidecar
    s.kill("SIGTERM");
    s.kill("SIGCONT");
    const exit = await Promise.race([s.exited, new Promise((r) => setTimeout(() => r("still running after 10 s"), 10_000))]);
    expect(exit).toEqual({ code: 0, signal: null });
    expect(s.logs.filter((l) => String(l.msg).includes("grace period over"))).toEqual([]);
    expect(s.logs.at(-1)?.msg).toBe("stopped"); // LMDB closed

    const meter = runCli(["export", "--data-dir", t.dataDir])
      .stdout.trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { meter?: { owner: string; value: string } })
      .find((r) => r.meter?.owner === "c1");
    expect(answered).toBeGreaterThanOrEqual(1);
    expect(Number(meter?.meter?.value)).toBeGreaterThanOrEqual(answered);
  }, 30_000);
});

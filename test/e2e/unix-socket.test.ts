/**
 * The Unix-socket deployment of docs/kubernetes.md: the socket lives in an `emptyDir` that
 * outlives a container restart. A sidecar killed with SIGKILL (an OOM kill, a failed liveness
 * probe) leaves its socket file behind; the restarted one must listen on it again instead of
 * exiting with EADDRINUSE (a crash loop). A socket a live sidecar serves is never taken from it,
 * and the app's group may connect (connecting needs write access on the socket).
 */
import { statSync } from "node:fs";
import { join } from "node:path";
import { afterAll, expect, it } from "vitest";
import { allowOne, connectClients } from "./helpers/clients.js";
import { startSidecar, stopSidecar, type SidecarProcess } from "./helpers/sidecar-process.js";
import { makeTestDir } from "./helpers/test-policy.js";

const t = makeTestDir();
const running: SidecarProcess[] = [];
afterAll(async () => {
  for (const s of running) await stopSidecar(s);
  t.cleanup();
});

const socket = join(t.dir, "limitr.sock");

async function serve(dataDir: string): Promise<SidecarProcess> {
  const s = await startSidecar(["--policy", t.policyPath, "--data-dir", dataDir, "--grpc-address", `unix:${socket}`]);
  running.push(s);
  return s;
}

async function allowed(): Promise<unknown> {
  const c = connectClients(`unix:${socket}`);
  try {
    return (await allowOne(c, "u", "counter", 1))["allowed"];
  } finally {
    c.close();
  }
}

it("a sidecar killed with SIGKILL leaves its socket; the restarted one listens on it again", async () => {
  const first = await serve(t.dataDir);
  expect(await allowed()).toBe(true);
  first.kill("SIGKILL");
  await first.exited;
  expect(statSync(socket).isSocket()).toBe(true);
  await serve(t.dataDir);
  expect(await allowed()).toBe(true);
  // Read and write for the owner and the group (the app "in the same group"), nothing for others.
  expect(statSync(socket).mode & 0o777).toBe(0o660);
});

it("a socket a live sidecar serves is not taken over: the second one fails to listen", async () => {
  const second = startSidecar(["--policy", t.policyPath, "--data-dir", join(t.dir, "other-data"), "--grpc-address", `unix:${socket}`]);
  await expect(second).rejects.toThrow(/exited \(1\) before logging "listening"[\s\S]*EADDRINUSE/);
  expect(await allowed()).toBe(true);
});

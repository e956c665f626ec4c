/**
 * Signals that reach the sidecar while it is still starting (SPEC §7: SIGTERM ends in a clean
 * stop and exit 0). The start-up is held at a known point by making the policy a named pipe: the
 * sidecar has opened its store and waits, inside its first policy read, until the test writes the
 * policy. A signal sent then is the case a pod deleted during start-up produces.
 */
import { execFileSync, spawn } from "node:child_process";
import { constants, existsSync, rmSync, writeFileSync } from "node:fs";
import { open, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { CLI, REPO_ROOT, spawnSidecar, type SpawnedSidecar } from "./helpers/sidecar-process.js";
import { versionOf } from "./helpers/reload-fixture.js";
import { COUNTER_POLICY, makeTestDir, type TestDir } from "./helpers/test-policy.js";

/** A test dir whose policy path is a named pipe instead of a file. */
function dirWithPolicyPipe(): TestDir {
  const t = makeTestDir();
  rmSync(t.policyPath);
  execFileSync("mkfifo", [t.policyPath]);
  return t;
}

/**
 * Writes `text` into the pipe the sidecar is reading. Opened without blocking, so a sidecar that
 * is gone fails the test (ENXIO: no reader) instead of hanging it.
 */
async function feedPipe(path: string, text: string): Promise<void> {
  const pipe = await open(path, constants.O_WRONLY | constants.O_NONBLOCK);
  try {
    await pipe.writeFile(text);
  } finally {
    await pipe.close();
  }
}

let t: TestDir | undefined;
let sidecar: SpawnedSidecar | undefined;
afterEach(async () => {
  if (sidecar !== undefined && sidecar.child.exitCode === null && sidecar.child.signalCode === null) {
    sidecar.child.kill("SIGKILL");
    await sidecar.exited;
  }
  sidecar = undefined;
  t?.cleanup();
  t = undefined;
});

/** Preload that holds the CLI's loading at a gate file (helpers/hold-cli-load.mjs). */
const HOLD_CLI_LOAD = fileURLToPath(new URL("./helpers/hold-cli-load.mjs", import.meta.url));

async function waitForFile(path: string): Promise<void> {
  for (let i = 0; i < 400 && !existsSync(path); i++) await new Promise((r) => setTimeout(r, 25));
  expect(existsSync(path), `${path} never appeared`).toBe(true);
}

/** A signal kept during start-up: start-up finishes, then the clean stop, exit 0. */
async function expectStopAfterStartUp(s: SpawnedSidecar): Promise<void> {
  expect(await s.exited).toEqual({ code: 0, signal: null });
  const msgs = s.logs.map((l) => l["msg"]);
  expect(msgs.filter((m) => m === "signal received" || m === "listening" || m === "shutting down" || m === "stopped")).toEqual([
    "signal received",
    "listening",
    "shutting down",
    "stopped",
  ]);
}

describe("signals during start-up", () => {
  it("SIGTERM while the CLI's modules still load: start-up completes, then a clean stop and exit 0", async () => {
    t = makeTestDir();
    const gate = join(t.dir, "load-gate");
    const s = (sidecar = spawnSidecar(["--policy", t.policyPath, "--data-dir", t.dataDir], {
      env: { NODE_OPTIONS: `--import=${HOLD_CLI_LOAD}`, LIMITR_TEST_LOAD_GATE: gate },
    }));
    // The entry point holds the stop signals and is importing the rest: grpc-js, lmdb and the
    // sidecar are not loaded yet. The signal used to take its default action here (exit 143).
    await waitForFile(`${gate}.reached`);
    s.child.kill("SIGTERM");
    await new Promise((r) => setTimeout(r, 100));
    writeFileSync(gate, "");

    await expectStopAfterStartUp(s);
    expect(s.logs.find((l) => l["msg"] === "signal received")).toMatchObject({ signal: "SIGTERM", duringStartUp: true });
  });

  it("a SIGTERM while another command's modules load takes its default action, as it did before they were held", async () => {
    t = makeTestDir();
    const gate = join(t.dir, "load-gate");
    const child = spawn(process.execPath, [CLI, "check-policy", t.policyPath], {
      cwd: REPO_ROOT,
      env: { ...process.env, NODE_OPTIONS: `--import=${HOLD_CLI_LOAD}`, LIMITR_TEST_LOAD_GATE: gate },
      stdio: "ignore",
    });
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once("exit", (code, signal) => resolve({ code, signal })));
    await waitForFile(`${gate}.reached`);
    child.kill("SIGTERM");
    await new Promise((r) => setTimeout(r, 100));
    writeFileSync(gate, "");
    expect(await exited).toEqual({ code: null, signal: "SIGTERM" });
  });

  it("SIGTERM while the first policy read waits: start-up completes, then a clean stop and exit 0", async () => {
    t = dirWithPolicyPipe();
    const s = (sidecar = spawnSidecar(["--policy", t.policyPath, "--data-dir", t.dataDir]));
    await s.logLine("store open");
    s.child.kill("SIGTERM");
    // Before handlers were installed at the start, the signal's default action ended it here.
    expect(await s.logLine("signal received")).toMatchObject({ signal: "SIGTERM", duringStartUp: true });

    await feedPipe(t.policyPath, COUNTER_POLICY);
    await expectStopAfterStartUp(s);
    expect(s.logs.filter((l) => l["level"] === "error")).toEqual([]);
  });

  it.each([
    { ends: "at a second stop signal, by that signal", flags: [], second: "SIGINT" as const, signal: "SIGINT", why: "a second SIGINT while starting" },
    { ends: "when the grace period after the first is over, by the first", flags: ["--shutdown-grace-ms", "300"], second: undefined, signal: "SIGTERM", why: "still starting 300 ms after SIGTERM" },
  ])("a start-up that never finishes ends $ends", async ({ flags, second, signal, why }) => {
    t = dirWithPolicyPipe(); // never written: the first policy read waits for good
    const s = (sidecar = spawnSidecar(["--policy", t.policyPath, "--data-dir", t.dataDir, ...flags]));
    await s.logLine("store open");
    s.child.kill("SIGTERM");
    await s.logLine("signal received");
    if (second !== undefined) s.child.kill(second);
    expect(await s.exited).toEqual({ code: null, signal });
    expect(s.logs.at(-1)).toMatchObject({ level: "error", msg: `start-up abandoned: ${why}` });
  });

  it("SIGHUP while the first policy read waits: the sidecar keeps starting, then re-reads the policy", async () => {
    t = dirWithPolicyPipe();
    // Polling once a day: after start-up, only the SIGHUP can make it read the policy again.
    const s = (sidecar = spawnSidecar(["--policy", t.policyPath, "--data-dir", t.dataDir, "--policy-watch", "poll", "--policy-poll-interval", "24hr"]));
    await s.logLine("store open");
    s.child.kill("SIGHUP");
    expect(await s.logLine("signal received")).toMatchObject({ signal: "SIGHUP", duringStartUp: true });

    // Start-up reads A; by the time it listens, B has replaced the pipe.
    const changed = COUNTER_POLICY.replace("value: 100", "value: 50");
    const next = join(t.dir, "next.yaml");
    await writeFile(next, changed);
    await feedPipe(t.policyPath, COUNTER_POLICY);
    await rename(next, t.policyPath);
    await s.logLine("listening");

    const applied = (): unknown[][] => s.logs.filter((l) => l["msg"] === "policy applied").map((l) => [l["version"], l["reason"]]);
    for (let i = 0; i < 80 && applied().length < 2; i++) await new Promise((r) => setTimeout(r, 25));
    expect(applied()).toEqual([
      [versionOf(COUNTER_POLICY), "initial"],
      [versionOf(changed), "SIGHUP"],
    ]);
    expect(s.child.exitCode).toBeNull();
    s.child.kill("SIGTERM");
    expect(await s.exited).toEqual({ code: 0, signal: null });
  });
});

/**
 * Runs the real, built sidecar (`node dist/cli/main.js serve …`) as a child process, the way an
 * operator does, so tests can SIGTERM or SIGKILL it for real. `npm test` builds dist/ first.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

export const REPO_ROOT = fileURLToPath(new URL("../../../", import.meta.url));
export const CLI = fileURLToPath(new URL("../../../dist/cli/main.js", import.meta.url));

/** A sidecar child as soon as it is spawned, before it listens. */
export interface SpawnedSidecar {
  readonly child: ChildProcess;
  /** Every JSON log line so far. */
  readonly logs: Record<string, unknown>[];
  /** Resolves with the exit code (or signal) once the child exits. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** The first log line whose `msg` is `msg`; rejects if the child exits first or after `timeoutMs`. */
  logLine(msg: string, timeoutMs?: number): Promise<Record<string, unknown>>;
}

/** A running sidecar child and what it said. */
export interface SidecarProcess extends SpawnedSidecar {
  /** The bound gRPC address (HOST:PORT) announced in the `listening` log line. */
  readonly grpcAddress: string;
  /** The bound HTTP address, when HTTP is on. */
  readonly httpAddress: string | undefined;
  /** The bound health-only address, when configured. */
  readonly healthAddress: string | undefined;
  /** The bound operator-only HTTP address (/metrics, /healthz, /readyz), when configured. */
  readonly metricsAddress: string | undefined;
  kill(signal?: NodeJS.Signals): void;
}

/** Spawns `limitr-sidecar serve` with the given flags (ports default to 0), without waiting. */
export function spawnSidecar(flags: readonly string[], options: { env?: Record<string, string> } = {}): SpawnedSidecar {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run 'npm run build' first (npm test does)`);
  const args = [CLI, "serve", ...flags];
  if (!flags.includes("--grpc-address")) args.push("--grpc-address", "127.0.0.1:0");
  if (!flags.includes("--http-address")) args.push("--http-address", "off");
  const child = spawn(process.execPath, args, {
    cwd: REPO_ROOT,
    env: { ...process.env, ...options.env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const logs: Record<string, unknown>[] = [];
  const waiting = new Set<() => void>();
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once("exit", (code, signal) => resolve({ code, signal })),
  );
  let buffered = "";
  child.stderr?.setEncoding("utf8");
  child.stderr?.on("data", (chunk: string) => {
    buffered += chunk;
    let nl: number;
    while ((nl = buffered.indexOf("\n")) >= 0) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      try {
        logs.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        logs.push({ raw: line });
      }
      for (const check of waiting) check();
    }
  });
  child.stdout?.resume();
  const logLine = (msg: string, timeoutMs = 20_000): Promise<Record<string, unknown>> =>
    new Promise((resolve, reject) => {
      const check = (): void => {
        const entry = logs.find((l) => l["msg"] === msg);
        if (entry === undefined) return;
        done();
        resolve(entry);
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`sidecar did not log "${msg}" in time; logs:\n${JSON.stringify(logs, null, 1)}`));
      }, timeoutMs);
      const done = (): void => {
        clearTimeout(timer);
        waiting.delete(check);
      };
      waiting.add(check);
      check();
      void exited.then(({ code, signal }) => {
        if (!waiting.has(check)) return;
        done();
        reject(new Error(`sidecar exited (${code ?? signal}) before logging "${msg}"; logs:\n${JSON.stringify(logs, null, 1)}`));
      });
    });
  return { child, logs, exited, logLine };
}

/** Starts `limitr-sidecar serve` with the given flags (ports default to 0) and waits until it listens. */
export async function startSidecar(
  flags: readonly string[],
  options: { env?: Record<string, string>; timeoutMs?: number } = {},
): Promise<SidecarProcess> {
  const { child, logs, exited, logLine } = spawnSidecar(flags, options);
  const announced = await logLine("listening", options.timeoutMs);
  return {
    child,
    grpcAddress: String(announced["grpc"]),
    httpAddress: typeof announced["http"] === "string" ? announced["http"] : undefined,
    healthAddress: typeof announced["health"] === "string" ? announced["health"] : undefined,
    metricsAddress: typeof announced["metrics"] === "string" ? announced["metrics"] : undefined,
    logs,
    exited,
    logLine,
    kill: (signal = "SIGTERM") => {
      child.kill(signal);
    },
  };
}

/** Stops a sidecar with SIGTERM and waits for it to exit. */
export async function stopSidecar(s: SidecarProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  if (s.child.exitCode === null && s.child.signalCode === null) s.kill("SIGTERM");
  return s.exited;
}

/** Runs a one-shot CLI command (`check-policy`, `export`, `import`, a `serve` that must fail) to completion. */
export function runCli(args: readonly string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { cwd: REPO_ROOT, encoding: "utf8", timeout: 30_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

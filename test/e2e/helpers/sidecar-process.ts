/**
 * Runs the real, built sidecar (`node dist/cli/main.js serve …`) as a child process, the way an
 * operator does, so tests can SIGTERM or SIGKILL it for real. `npm test` builds dist/ first.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

export const REPO_ROOT = fileURLToPath(new URL("../../../", import.meta.url));
export const CLI = fileURLToPath(new URL("../../../dist/cli/main.js", import.meta.url));

/** A running sidecar child and what it said. */
export interface SidecarProcess {
  readonly child: ChildProcess;
  /** The bound gRPC address (HOST:PORT) announced in the `listening` log line. */
  readonly grpcAddress: string;
  /** The bound HTTP address, when HTTP is on. */
  readonly httpAddress: string | undefined;
  /** The bound health-only address, when configured. */
  readonly healthAddress: string | undefined;
  /** The bound operator-only HTTP address (/metrics, /healthz, /readyz), when configured. */
  readonly metricsAddress: string | undefined;
  /** Every JSON log line so far. */
  readonly logs: Record<string, unknown>[];
  /** Resolves with the exit code (or signal) once the child exits. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  kill(signal?: NodeJS.Signals): void;
}

/** Starts `limitr-sidecar serve` with the given flags (ports default to 0) and waits until it listens. */
export async function startSidecar(
  flags: readonly string[],
  options: { env?: Record<string, string>; timeoutMs?: number } = {},
): Promise<SidecarProcess> {
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
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once("exit", (code, signal) => resolve({ code, signal })),
  );
  let buffered = "";
  const listening = new Promise<Record<string, unknown>>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`sidecar did not listen in time; logs:\n${JSON.stringify(logs, null, 1)}`)), options.timeoutMs ?? 20_000);
    child.stderr?.setEncoding("utf8");
    child.stderr?.on("data", (chunk: string) => {
      buffered += chunk;
      let nl: number;
      while ((nl = buffered.indexOf("\n")) >= 0) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        try {
          const entry = JSON.parse(line) as Record<string, unknown>;
          logs.push(entry);
          if (entry["msg"] === "listening") {
            clearTimeout(timer);
            resolve(entry);
          }
        } catch {
          logs.push({ raw: line });
        }
      }
    });
    void exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`sidecar exited (${code ?? signal}) before listening; logs:\n${JSON.stringify(logs, null, 1)}`));
    });
  });
  child.stdout?.resume();
  const announced = await listening;
  return {
    child,
    grpcAddress: String(announced["grpc"]),
    httpAddress: typeof announced["http"] === "string" ? announced["http"] : undefined,
    healthAddress: typeof announced["health"] === "string" ? announced["health"] : undefined,
    metricsAddress: typeof announced["metrics"] === "string" ? announced["metrics"] : undefined,
    logs,
    exited,
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

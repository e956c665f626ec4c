/**
 * Child processes of the bench: start one, wait for its `listening` JSON line (which carries the
 * bound gRPC address), read its CPU time, wake-ups and RSS from /proc, and stop it.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { createInterface } from "node:readline";

export interface Child {
  readonly proc: ChildProcess;
  readonly pid: number;
  /** Bound gRPC address (HOST:PORT). */
  readonly address: string;
  /** ms from spawn to the `listening` line. */
  readonly startupMs: number;
  /** The `listening` line itself (the sidecar's names every address it bound). */
  readonly listening: Readonly<Record<string, unknown>>;
  /** Waits for the next stderr JSON line whose msg is `msg`. */
  nextLine(msg: string, timeoutMs: number): Promise<Record<string, unknown>>;
  stop(): Promise<void>;
}

/**
 * `serve` flags every bench sidecar gets besides its policy, data dir and listeners. The example
 * deployment runs with a data budget, which every commit checks, so the bench does too; its budget
 * is far above what a bench writes.
 */
export const SIDECAR_SERVE_FLAGS: readonly string[] = ["--max-data-bytes", "50000000000"];

const CLK_TCK = 100;

/** utime + stime of `pid` in ms. */
export function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLK_TCK;
}

/** Sums `read(task dir)` over the threads of `pid` alive now (a thread that already ended is not counted). */
function sumThreads(pid: number, read: (taskDir: string) => number): number {
  let n = 0;
  for (const task of readdirSync(`/proc/${pid}/task`)) {
    try {
      n += read(`/proc/${pid}/task/${task}`);
    } catch {
      // the thread ended between the listing and the read
    }
  }
  return n;
}

/** Voluntary context switches of all of `pid`'s threads: how often they went to sleep and woke. */
export function wakeups(pid: number): number {
  return sumThreads(pid, (dir) => Number(/\nvoluntary_ctxt_switches:\s+(\d+)/.exec(readFileSync(`${dir}/status`, "utf8"))?.[1] ?? 0));
}

/**
 * CPU time of all of `pid`'s threads in ns, from schedstat: `cpuMs` counts 10 ms clock ticks,
 * too coarse for an idle process over 10 s.
 */
function cpuNs(pid: number): number {
  return sumThreads(pid, (dir) => Number(readFileSync(`${dir}/schedstat`, "utf8").split(" ")[0]));
}

/**
 * CPU time of `pid`'s main thread in ns (schedstat). Under load the main thread is the one that
 * saturates (the event loop: http2, grpc-js, the handlers, the LMDB commit) while the machine as a
 * whole is not, so its time per call is what bounds throughput: req/s × it ≈ 0.9 s per second.
 */
export function mainThreadCpuNs(pid: number): number {
  return Number(readFileSync(`/proc/${pid}/task/${pid}/schedstat`, "utf8").split(" ")[0]);
}

export interface IdleCost {
  /** CPU time used per second, ms. */
  readonly cpuMsPerS: number;
  /** Wake-ups (voluntary context switches, all threads) per second. */
  readonly wakeupsPerS: number;
}

/** What `pid` costs while nobody calls it, measured over `seconds`. */
export async function idleCost(pid: number, seconds: number): Promise<IdleCost> {
  const cpu0 = cpuNs(pid);
  const w0 = wakeups(pid);
  await new Promise((r) => setTimeout(r, seconds * 1000));
  return { cpuMsPerS: (cpuNs(pid) - cpu0) / 1e6 / seconds, wakeupsPerS: (wakeups(pid) - w0) / seconds };
}

/** Resident set size of `pid` in bytes. */
export function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return Number(m?.[1] ?? 0) * 1024;
}

export async function startChild(command: string, args: readonly string[], timeoutMs = 60_000): Promise<Child> {
  const t0 = performance.now();
  const proc = spawn(command, [...args], { stdio: ["ignore", "ignore", "pipe"] });
  const lines = createInterface({ input: proc.stderr! });
  const waiters: { msg: string; resolve: (l: Record<string, unknown>) => void }[] = [];
  const tail: string[] = [];
  lines.on("line", (line) => {
    tail.push(line);
    if (tail.length > 20) tail.shift();
    let parsed: Record<string, unknown>;
    try {
      parsed = JSON.parse(line) as Record<string, unknown>;
    } catch {
      return;
    }
    const i = waiters.findIndex((w) => w.msg === parsed["msg"]);
    if (i >= 0) waiters.splice(i, 1)[0]?.resolve(parsed);
  });
  const nextLine = (msg: string, ms: number): Promise<Record<string, unknown>> =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${command}: no "${msg}" line within ${ms} ms\n${tail.join("\n")}`)), ms);
      const onExit = (code: number | null): void => {
        clearTimeout(timer);
        reject(new Error(`${command} exited (${code}) before "${msg}"\n${tail.join("\n")}`));
      };
      proc.once("exit", onExit);
      waiters.push({
        msg,
        resolve: (l) => {
          clearTimeout(timer);
          proc.off("exit", onExit);
          resolve(l);
        },
      });
    });
  const listening = await nextLine("listening", timeoutMs);
  const startupMs = performance.now() - t0;
  const address = String(listening["grpc"] ?? "");
  const stop = (): Promise<void> =>
    new Promise((resolve) => {
      if (proc.exitCode !== null || proc.signalCode !== null) return resolve();
      const kill = setTimeout(() => proc.kill("SIGKILL"), 15_000);
      proc.once("exit", () => {
        clearTimeout(kill);
        resolve();
      });
      proc.kill("SIGTERM");
    });
  return { proc, pid: proc.pid ?? 0, address, startupMs, listening, nextLine, stop };
}

/**
 * Compiles policy documents on a worker thread, so that a reload does not stop the event loop
 * that answers decisions. A cold YAML parse, validation and compile of even a small policy takes
 * a few milliseconds of the main thread (the parser runs once per reload and is never
 * optimised); every request arriving meanwhile waits.
 *
 * One worker, started on the first compile and kept while reloads keep coming (a worker per
 * reload took ~130 ms to answer), then stopped after `idleMs` without a compile: a worker holds
 * about 20 MB of RSS, and most pods reload rarely. It is unref'd, so it never keeps the process
 * alive. Compiles are answered in order. If the worker fails or exits, the compiles waiting on it
 * fail with that reason (the watcher keeps the last good policy and reports it) and the next
 * compile starts a new worker; one that does not answer within `timeoutMs` is terminated the
 * same way.
 */
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";
import type { CompileResult } from "../policy/index.js";
import type { WatchLogger } from "./types.js";

/** A document to compile, as posted to the worker. */
export interface CompileRequest {
  readonly id: number;
  readonly text: string;
  readonly version: string;
}

/** The worker's answer: the compiler's result, or why the compiler threw. */
export type CompileReply =
  | { readonly id: number; readonly ok: true; readonly result: CompileResult }
  | { readonly id: number; readonly ok: false; readonly message: string };

export interface WorkerCompilerOptions {
  /** The worker's module (default: `compile-worker.js` next to this one, as built). */
  readonly workerUrl?: URL;
  /** How long one compile may take before the worker is deemed stuck (default 30 s). */
  readonly timeoutMs?: number;
  /** How long the worker is kept after its last answer, for the next reload (default 60 s). */
  readonly idleMs?: number;
  /** Where the worker's start, stop and failures are logged (debug, debug, warn). */
  readonly logger?: WatchLogger;
}

export interface WorkerCompiler {
  /** Compiles `text` on the worker; rejects when the worker failed, exited or timed out. */
  compile(text: string, version: string): Promise<CompileResult>;
  /** Stops the worker; later compiles reject. Idempotent. */
  close(): Promise<void>;
}

/** The worker's module as built: `compile-worker.js` next to this module in dist/. */
export const COMPILE_WORKER_URL = new URL("./compile-worker.js", import.meta.url);

/**
 * Whether the worker module exists. Run from TypeScript sources (vitest, tsx) it does not, since a
 * worker thread cannot load `.ts`; the caller then compiles on its own thread.
 */
export function compileWorkerBuilt(url: URL = COMPILE_WORKER_URL): boolean {
  return existsSync(fileURLToPath(url));
}

export const DEFAULT_COMPILE_TIMEOUT_MS = 30_000;
export const DEFAULT_COMPILER_IDLE_MS = 60_000;

interface Waiting {
  readonly resolve: (r: CompileResult) => void;
  readonly reject: (e: Error) => void;
  readonly timer: NodeJS.Timeout;
}

export function createWorkerCompiler(options: WorkerCompilerOptions = {}): WorkerCompiler {
  const url = options.workerUrl ?? COMPILE_WORKER_URL;
  const timeoutMs = options.timeoutMs ?? DEFAULT_COMPILE_TIMEOUT_MS;
  const idleMs = options.idleMs ?? DEFAULT_COMPILER_IDLE_MS;
  let worker: Worker | undefined;
  let idleTimer: NodeJS.Timeout | undefined;
  let nextId = 1;
  let closed = false;
  const waiting = new Map<number, Waiting>();

  /** Fails everything waiting on `w` and forgets it, so the next compile starts a new worker. */
  function lose(w: Worker, reason: string): void {
    if (worker !== w) return;
    worker = undefined;
    if (!closed) options.logger?.warn("policy compile worker failed; the next reload starts a new one", { reason });
    void w.terminate();
    for (const [id, entry] of waiting) {
      clearTimeout(entry.timer);
      entry.reject(new Error(reason));
      waiting.delete(id);
    }
  }

  function start(): Worker {
    const w = new Worker(url);
    const threadId = w.threadId;
    w.unref();
    options.logger?.debug("policy compile worker started", { threadId });
    w.on("message", (reply: CompileReply) => {
      const entry = waiting.get(reply.id);
      if (entry === undefined) return;
      waiting.delete(reply.id);
      clearTimeout(entry.timer);
      if (reply.ok) entry.resolve(reply.result);
      else entry.reject(new Error(reply.message));
      if (waiting.size === 0) {
        idleTimer = setTimeout(() => {
          // Forgotten first, so its exit is not taken for a failure.
          if (worker === w) worker = undefined;
          void w.terminate();
        }, idleMs);
        idleTimer.unref();
      }
    });
    w.on("error", (err) => lose(w, `the compile worker failed: ${err.message}`));
    w.on("exit", (code) => {
      options.logger?.debug("policy compile worker stopped", { threadId, code });
      lose(w, `the compile worker exited (code ${code})`);
    });
    return w;
  }

  return {
    compile(text, version) {
      if (closed) return Promise.reject(new Error("the compile worker is closed"));
      clearTimeout(idleTimer);
      const w = (worker ??= start());
      const id = nextId++;
      return new Promise<CompileResult>((resolve, reject) => {
        const timer = setTimeout(() => lose(w, `the compile worker did not answer within ${timeoutMs} ms`), timeoutMs);
        timer.unref();
        waiting.set(id, { resolve, reject, timer });
        w.postMessage({ id, text, version } satisfies CompileRequest);
      });
    },
    async close() {
      closed = true;
      clearTimeout(idleTimer);
      const w = worker;
      if (w === undefined) return;
      lose(w, "the compile worker is closed");
      await w.terminate();
    },
  };
}

/**
 * The worker-thread policy compiler: the real worker (as built in dist/, which `npm test` builds
 * first) compiles exactly what the main thread compiles, and a scripted worker shows each way a
 * worker can fail: it exits, it does not answer, the compiler throws, or it is closed.
 */
import { readdirSync, readFileSync } from "node:fs";
import { afterEach, describe, expect, it } from "vitest";
import { loadPolicy } from "../../src/policy/index.js";
import { compileWorkerBuilt, createWorkerCompiler, type WatchLogger, type WorkerCompiler } from "../../src/watch/index.js";

const BUILT_WORKER = new URL("../../dist/watch/compile-worker.js", import.meta.url);
const SCRIPTED_WORKER = new URL("./fixtures-worker/scripted-compile-worker.mjs", import.meta.url);
const EXAMPLES = new URL("../../examples/policies/", import.meta.url);

const compilers: WorkerCompiler[] = [];
afterEach(async () => {
  await Promise.all(compilers.splice(0).map((c) => c.close()));
});
/** What a compiler logged: message and fields. */
type Logged = { readonly msg: string; readonly fields: Readonly<Record<string, unknown>> };
function logInto(lines: Logged[]): WatchLogger {
  const at = (msg: string, fields: Readonly<Record<string, unknown>> = {}): void => void lines.push({ msg, fields });
  return { debug: at, info: at, warn: at, error: at };
}

function compiler(workerUrl: URL, options: { timeoutMs?: number; idleMs?: number; logger?: WatchLogger } = {}): WorkerCompiler {
  const c = createWorkerCompiler({ workerUrl, ...options });
  compilers.push(c);
  return c;
}

/** The message of the only issue of a scripted worker's answer. */
async function echoed(c: WorkerCompiler, text: string): Promise<string> {
  const result = await c.compile(text, "v");
  if (result.ok) throw new Error("the scripted worker only rejects");
  return result.issues[0]?.message ?? "";
}

describe("worker compiler", () => {
  it("finds the worker module as built, and not beside the TypeScript sources", () => {
    expect(compileWorkerBuilt(BUILT_WORKER)).toBe(true);
    // What the sidecar run from sources (vitest, tsx) sees: it compiles reloads on its own thread.
    expect(compileWorkerBuilt()).toBe(false);
  });

  it("compiles every example policy, and a rejected one, exactly as the main thread does", async () => {
    const c = compiler(BUILT_WORKER);
    const files = readdirSync(EXAMPLES).filter((f) => /\.ya?ml$|\.json$/.test(f));
    expect(files.length).toBeGreaterThan(2);
    const documents = files.map((f) => readFileSync(new URL(f, EXAMPLES), "utf8"));
    documents.push("policy:\n  plans:\n    free: { entitlements: { chat: { limit: { credit: nope, value: -1 } } } }\n", "policy: [\n");
    for (const [i, text] of documents.entries()) {
      const version = `v${i}`;
      const here = loadPolicy(text, { version });
      expect(await c.compile(text, version)).toEqual(here);
    }
    // At least one of them compiled: the comparison covers a whole compiled policy.
    expect(documents.some((text) => loadPolicy(text, { version: "x" }).ok)).toBe(true);
  });

  it("answers compiles in order, all on one worker", async () => {
    const c = compiler(SCRIPTED_WORKER);
    const answers = await Promise.all(["a", "b", "c"].map((t) => echoed(c, t)));
    const thread = answers[0]?.split(" on ")[1];
    expect(answers).toEqual([`a on ${thread}`, `b on ${thread}`, `c on ${thread}`]);
  });

  it("keeps the worker between reloads close together, and stops it once idle", async () => {
    const logged: Logged[] = [];
    const c = compiler(SCRIPTED_WORKER, { idleMs: 300, logger: logInto(logged) });
    const first = Number((await echoed(c, "a")).split(" on ")[1]);
    expect(Number((await echoed(c, "b")).split(" on ")[1])).toBe(first);
    // Idle for longer than idleMs: the thread really ends, quietly, and a new one answers.
    const stopped = (): boolean => logged.some((l) => l.msg === "policy compile worker stopped" && l.fields["threadId"] === first);
    for (let i = 0; i < 100 && !stopped(); i++) await new Promise((r) => setTimeout(r, 20));
    expect(stopped()).toBe(true);
    expect(logged.filter((l) => l.msg.includes("failed"))).toEqual([]);
    expect(Number((await echoed(c, "c")).split(" on ")[1])).not.toBe(first);
  });

  it("fails the compile when the worker exits, and starts a new worker for the next", async () => {
    const logged: Logged[] = [];
    const c = compiler(SCRIPTED_WORKER, { logger: logInto(logged) });
    const first = (await echoed(c, "a")).split(" on ")[1];
    await expect(c.compile("exit", "v")).rejects.toThrow("the compile worker exited (code 3)");
    expect(logged).toContainEqual({ msg: "policy compile worker failed; the next reload starts a new one", fields: { reason: "the compile worker exited (code 3)" } });
    const second = (await echoed(c, "b")).split(" on ")[1];
    expect(second).not.toBe(first);
  });

  it("gives up on a worker that does not answer in time, and starts a new one", async () => {
    const c = compiler(SCRIPTED_WORKER, { timeoutMs: 200 });
    await expect(c.compile("hang", "v")).rejects.toThrow("the compile worker did not answer within 200 ms");
    expect(await echoed(c, "a")).toMatch(/^a on \d+$/);
  });

  it("reports a compiler that threw in the worker", async () => {
    const c = compiler(SCRIPTED_WORKER);
    await expect(c.compile("throw", "v")).rejects.toThrow("boom");
    // The worker itself is fine: the next compile is answered by it.
    expect(await echoed(c, "a")).toMatch(/^a on \d+$/);
  });

  it("fails a compile waiting at close, and every compile after it", async () => {
    const c = compiler(SCRIPTED_WORKER);
    const waiting = expect(c.compile("hang", "v")).rejects.toThrow("the compile worker is closed");
    await c.close();
    await waiting;
    await expect(c.compile("a", "v")).rejects.toThrow("the compile worker is closed");
    await c.close();
  });
});

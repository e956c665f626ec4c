/**
 * Two builds of the sidecar side by side, with the empty grpc-js server beside them: what a
 * change does to a durable call, measured finely enough to see a few percent. A 5-run
 * `npm run bench` cannot: its runs swing by ±15% with the shared host, more than most changes
 * move. Here the three servers run at once, each with its own data dir, and take turns in an
 * order balanced over every six rounds (each in every position, and right after each of the
 * others, equally often: what ran just before moves a run by a few percent), so every round
 * compares them in the same spell of the host; the report is the difference round by round,
 * with a bootstrap interval. Use a multiple of six rounds, and run a build against itself (A/A)
 * to see what this host resolves.
 *
 * Per round and server, in turn: a throughput run (h2load, 1 connection × 64 streams; req/s and
 * the main thread's CPU per call, the thread that bounds throughput), the meter read back and
 * checked against the successful responses; then, in a second rotated phase, lone calls (one at
 * a time after a warm-up; p50, and main-thread CPU per call).
 *
 *   npm run bench:ab -- A [B] [--rounds N] [--requests N] [--calls N] [--rpc Allow|Check|Record]
 *
 * A and B are git revisions (built into $TMPDIR/limitr-ab-builds/, once per commit, against this
 * checkout's node_modules) or directories holding a built sidecar (`cli/main.js`); B defaults to
 * this checkout's dist/ (built by `npm run bench:ab`). JSON in bench/results/ab-*.json.
 */
import { cpus, tmpdir } from "node:os";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import type * as grpc from "@grpc/grpc-js";
import { parseAbOptions, UsageError, USAGE, type AbOptions } from "./grpc/ab-options.js";
import { resolveBuild, workingTreeBuild, type Build } from "./grpc/ab-builds.js";
import { h2load, rawClient, sequentialLatency, sidecarMeter } from "./grpc/load.js";
import { writePolicy } from "./grpc/policy.js";
import { mainThreadCpuNs, startChild, type Child } from "./grpc/processes.js";
import { median, paired, roundOrder, type Paired } from "./grpc/stats.js";
import { DECISION_SERVICE, SINGLE, decisionRequest, grpcFrame, type Rpc } from "./grpc/wire.js";

const ROOT = resolve(import.meta.dirname, "..", "..");
const STREAMS = 64;
const LONE_WARMUP = 300;
const CUSTOMER = "bench_hot";

// ---------------------------------------------------------------- measuring

interface Server {
  readonly name: string;
  readonly child: Child;
  readonly client: grpc.Client;
  /** Undefined for the empty server, which stores nothing. */
  readonly meter: (() => Promise<number>) | undefined;
  readonly throughput: { reqPerSec: number; mainUsPerCall: number }[];
  readonly lone: { p50Ms: number; mainUsPerCall: number }[];
}

/** How far one successful call moves the meter. */
const MOVES: Record<Rpc, number> = { Allow: 1, Check: 0, Record: 1 };

async function throughputRound(s: Server, bodyFile: string, opts: AbOptions, requests: number): Promise<{ reqPerSec: number; mainUsPerCall: number }> {
  const before = await s.meter?.();
  const main0 = mainThreadCpuNs(s.child.pid);
  const r = await h2load({ address: s.child.address, path: `${DECISION_SERVICE}/${opts.rpc}`, bodyFile, clients: 1, streams: STREAMS, requests });
  const main1 = mainThreadCpuNs(s.child.pid);
  if (r.failed > 0 || r.succeeded === 0) throw new Error(`${s.name}: ${r.failed} failed, ${r.succeeded} succeeded`);
  if (before !== undefined && s.meter) {
    const moved = (await s.meter()) - before;
    // h2load ignores grpc-status: a call answered with an error would pass as a success.
    if (moved !== r.succeeded * MOVES[opts.rpc]) throw new Error(`verification failed: ${s.name}'s meter moved by ${moved} for ${r.succeeded} successful ${opts.rpc} calls`);
  }
  return { reqPerSec: r.reqPerSec, mainUsPerCall: (main1 - main0) / 1000 / r.succeeded };
}

async function loneRound(s: Server, body: Buffer, opts: AbOptions): Promise<{ p50Ms: number; mainUsPerCall: number }> {
  const path = `${DECISION_SERVICE}/${opts.rpc}`;
  await sequentialLatency(s.client, path, body, LONE_WARMUP, 0);
  const main0 = mainThreadCpuNs(s.child.pid);
  const p = await sequentialLatency(s.client, path, body, 0, opts.calls);
  return { p50Ms: p.p50, mainUsPerCall: (mainThreadCpuNs(s.child.pid) - main0) / 1000 / opts.calls };
}

// ---------------------------------------------------------------- report

const fmt = (n: number, digits: number): string => (Number.isFinite(n) ? n.toFixed(digits) : "–");
const signed = (n: number, digits: number): string => (n > 0 ? "+" : "") + fmt(n, digits);

/** A paired summary; `show` formats a value (signed for differences, plain for ratios). */
function pairedLine(what: string, p: Paired, show: (n: number) => string, won: string): string {
  const verdict = p.resolved ? "" : ", not told apart from none";
  return `  ${what}: median ${show(p.median)}, 95% interval ${show(p.low)} … ${show(p.high)}${verdict} (rounds ${show(p.min)} … ${show(p.max)}; ${won} in ${p.below} of ${p.rounds})`;
}

function report(servers: readonly Server[], opts: AbOptions, builds: readonly Build[]): Record<string, unknown> {
  const [empty, a, b] = servers as [Server, Server, Server];
  const col = (s: Server) => ({
    reqPerSec: median(s.throughput.map((r) => r.reqPerSec)),
    mainUsPerCall: median(s.throughput.map((r) => r.mainUsPerCall)),
    loneP50Ms: median(s.lone.map((r) => r.p50Ms)),
    loneMainUsPerCall: median(s.lone.map((r) => r.mainUsPerCall)),
  });
  console.log(`\n${opts.rpc}, ${opts.rounds} rounds in turn: ${opts.requests} requests × ${STREAMS} in flight, then ${opts.calls} lone calls; medians`);
  console.log(`${"".padEnd(44)} ${"req/s".padStart(8)} ${"main µs/call".padStart(13)} ${"lone p50 ms".padStart(12)} ${"lone main µs".padStart(13)}`);
  const rows: Record<string, unknown> = {};
  for (const s of servers) {
    const c = col(s);
    rows[s.name] = c;
    console.log(`${s.name.padEnd(44).slice(0, 44)} ${fmt(c.reqPerSec, 0).padStart(8)} ${fmt(c.mainUsPerCall, 1).padStart(13)} ${fmt(c.loneP50Ms, 3).padStart(12)} ${fmt(c.loneMainUsPerCall, 0).padStart(13)}`);
  }
  const tp = (s: Server, k: "reqPerSec" | "mainUsPerCall") => s.throughput.map((r) => r[k]);
  const lone = (s: Server, k: "p50Ms" | "mainUsPerCall") => s.lone.map((r) => r[k]);
  const ratio = (x: number, y: number) => y / x;
  const diff = {
    mainUsPerCall: paired(tp(a, "mainUsPerCall"), tp(b, "mainUsPerCall")),
    reqPerSec: paired(tp(a, "reqPerSec"), tp(b, "reqPerSec"), ratio, 1),
    ...(opts.calls > 0 ? { loneP50Ms: paired(lone(a, "p50Ms"), lone(b, "p50Ms")) } : {}),
  };
  console.log(`B against A, round by round:`);
  console.log(pairedLine("main-thread µs per call, B − A", diff.mainUsPerCall, (n) => `${signed(n, 1)} µs`, "B cheaper"));
  console.log(pairedLine("req/s, B ÷ A", diff.reqPerSec, (n) => fmt(n, 3), "B slower"));
  if (diff.loneP50Ms) console.log(pairedLine("lone-call p50, B − A", diff.loneP50Ms, (n) => `${signed(n, 3)} ms`, "B faster"));
  // The bench's yardsticks, per round: the empty call's main-thread cost over the build's (the
  // throughput target asks ≥ 0.80), and a lone call's p50 over the empty server's (≤ 1.3).
  const againstEmpty = {
    mainUsPerCall: { a: paired(tp(a, "mainUsPerCall"), tp(empty, "mainUsPerCall"), ratio, 1), b: paired(tp(b, "mainUsPerCall"), tp(empty, "mainUsPerCall"), ratio, 1) },
    ...(opts.calls > 0 ? { loneP50Ms: { a: paired(lone(empty, "p50Ms"), lone(a, "p50Ms"), ratio, 1), b: paired(lone(empty, "p50Ms"), lone(b, "p50Ms"), ratio, 1) } } : {}),
  };
  const m = againstEmpty.mainUsPerCall;
  console.log(`empty server's main-thread µs per call ÷ the build's, per round (throughput target ≥ 0.80): A ${fmt(m.a.median, 3)}, B ${fmt(m.b.median, 3)}`);
  const l = againstEmpty.loneP50Ms;
  if (l) console.log(`lone-call p50 ÷ the empty server's, per round (target ≤ 1.3): A ${fmt(l.a.median, 2)}, B ${fmt(l.b.median, 2)}`);
  return { medians: rows, bMinusA: diff, againstEmpty, builds };
}

// ---------------------------------------------------------------- main

async function main(): Promise<void> {
  let opts: AbOptions;
  let builds: Build[];
  try {
    opts = parseAbOptions(process.argv.slice(2));
    const cache = join(tmpdir(), "limitr-ab-builds");
    builds = [resolveBuild(ROOT, opts.a, cache), opts.b === undefined ? workingTreeBuild(ROOT) : resolveBuild(ROOT, opts.b, cache)];
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    console.error(`${e.message}\n${USAGE}`);
    process.exit(2);
  }
  const work = mkdtempSync(join(tmpdir(), "limitr-ab-"));
  const policy = join(work, "policy.yaml");
  writePolicy(policy);
  const body = decisionRequest(opts.rpc, CUSTOMER, SINGLE);
  const bodyFile = join(work, "request.bin");
  writeFileSync(bodyFile, grpcFrame(body));
  const servers: Server[] = [];
  const stopAll = async (): Promise<void> => {
    for (const s of servers) {
      s.client.close();
      await s.child.stop();
    }
    rmSync(work, { recursive: true, force: true });
  };
  process.once("SIGINT", () => void stopAll().then(() => process.exit(130)));
  try {
    const add = (name: string, child: Child, stores: boolean): void => {
      const client = rawClient(child.address);
      const meter = stores ? () => sidecarMeter(client, CUSTOMER, "requests") : undefined;
      servers.push({ name, child, client, meter, throughput: [], lone: [] });
    };
    add("empty grpc-js server", await startChild(process.execPath, [join(ROOT, "build/bench/grpc/empty-server.js")]), false);
    for (const [i, build] of builds.entries()) {
      const args = [join(build.dist, "cli/main.js"), "serve", "--policy", policy, "--data-dir", join(work, `data-${i}`), "--grpc-address", "127.0.0.1:0", "--http-address", "off"];
      add(`${i === 0 ? "A" : "B"} ${build.label}`, await startChild(process.execPath, args), true);
    }
    const t0 = performance.now();
    // Warm-up: JIT, the row cache, LMDB's first pages; not recorded.
    for (const s of servers) await throughputRound(s, bodyFile, opts, Math.max(2000, Math.round(opts.requests / 2)));
    for (let i = 0; i < opts.rounds; i++) {
      for (const s of roundOrder(servers, i)) s.throughput.push(await throughputRound(s, bodyFile, opts, opts.requests));
      const last = servers.map((s) => `${fmt(s.throughput.at(-1)?.mainUsPerCall ?? NaN, 1)} µs`).join(" / ");
      console.error(`throughput round ${i + 1}/${opts.rounds}: main thread per call ${last} (${Math.round((performance.now() - t0) / 1000)} s)`);
    }
    if (opts.calls > 0) {
      for (let i = 0; i < opts.rounds; i++) {
        for (const s of roundOrder(servers, i)) s.lone.push(await loneRound(s, Buffer.from(body), opts));
        console.error(`lone-call round ${i + 1}/${opts.rounds}: p50 ${servers.map((s) => `${fmt(s.lone.at(-1)?.p50Ms ?? NaN, 3)} ms`).join(" / ")}`);
      }
    }
    const summary = report(servers, opts, builds);
    const resultsDir = join(ROOT, "bench", "results");
    mkdirSync(resultsDir, { recursive: true });
    const date = new Date().toISOString();
    const file = join(resultsDir, `ab-${date.replace(/[:.]/g, "-")}.json`);
    const raw = Object.fromEntries(servers.map((s) => [s.name, { throughput: s.throughput, lone: s.lone }]));
    writeFileSync(file, JSON.stringify({ date, options: opts, machine: { cpus: cpus().length, model: cpus()[0]?.model, node: process.version }, ...summary, raw }, null, 1));
    console.log(`\nJSON: ${file}`);
  } finally {
    await stopAll();
  }
}

await main();

/**
 * Two builds of the sidecar side by side, with the empty grpc-js server beside them: what a
 * change does to a durable call, measured finely enough to see a few percent. A 5-run
 * `npm run bench` cannot: its runs swing by ±15% with the shared host, more than most changes
 * move.
 *
 * The three run at once, each on its own data dir, and take turns in an order balanced over
 * every six rounds (each in every position, and right after each of the others, equally often),
 * so every round compares them in the same spell of the host. Rounds come in blocks, each with
 * fresh processes: two processes of one build can differ by a few percent for the whole of their
 * lives (JIT, heap layout), which no number of rounds on the same processes averages out. The
 * report is B against A round by round, the median with a 95% bootstrap interval drawn by block,
 * and each build against the empty server. Over few blocks that interval is narrower than the
 * truth (two runs of 20 and 8 blocks of the same A/B only just overlapped), hence 16 by default.
 * Run a build against itself (A/A) to see what the host resolves that hour.
 *
 * Per block: a warm-up run each, then per round and server, in turn, a throughput run (h2load,
 * 1 connection × 64 streams; req/s and the main thread's CPU per call, the thread that bounds
 * throughput) with the meter read back and checked against the successful responses; then as
 * many rounds of lone calls (one at a time after a warm-up; p50 and main-thread CPU per call).
 *
 *   npm run bench:ab -- A [B] [--blocks N] [--rounds N] [--requests N] [--calls N] [--rpc Allow|Check|Record] [--items 1|3]
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
import { SIDECAR_SERVE_FLAGS, mainThreadCpuNs, startChild, type Child } from "./grpc/processes.js";
import { median, paired, roundOrder, type Paired } from "./grpc/stats.js";
import { DECISION_SERVICE, SINGLE, TRIPLE, decisionRequest, grpcFrame, type Rpc } from "./grpc/wire.js";

const ROOT = resolve(import.meta.dirname, "..", "..");
const STREAMS = 64;
const LONE_WARMUP = 300;
const CUSTOMER = "bench_hot";

// ---------------------------------------------------------------- measuring

interface ThroughputSample {
  readonly block: number;
  readonly reqPerSec: number;
  readonly mainUsPerCall: number;
}

interface LoneSample {
  readonly block: number;
  readonly p50Ms: number;
  readonly mainUsPerCall: number;
}

/** One of the three compared (the empty server, A, B), across blocks. */
interface Contender {
  readonly name: string;
  /** The command line of a fresh process on `dataDir`. */
  readonly args: (dataDir: string) => string[];
  /** Whether it stores the meter (the sidecars), so each run can be verified. */
  readonly stores: boolean;
  readonly throughput: ThroughputSample[];
  readonly lone: LoneSample[];
}

/** A contender's process in one block. */
interface Server {
  readonly contender: Contender;
  readonly child: Child;
  readonly client: grpc.Client;
  readonly meter: (() => Promise<number>) | undefined;
}

/** How far one successful call moves the meter. */
const MOVES: Record<Rpc, number> = { Allow: 1, Check: 0, Record: 1 };

async function throughputRun(s: Server, bodyFile: string, opts: AbOptions): Promise<{ reqPerSec: number; mainUsPerCall: number }> {
  const before = await s.meter?.();
  const main0 = mainThreadCpuNs(s.child.pid);
  const r = await h2load({ address: s.child.address, path: `${DECISION_SERVICE}/${opts.rpc}`, bodyFile, clients: 1, streams: STREAMS, requests: opts.requests });
  const main1 = mainThreadCpuNs(s.child.pid);
  const name = s.contender.name;
  if (r.failed > 0 || r.succeeded === 0) throw new Error(`${name}: ${r.failed} failed, ${r.succeeded} succeeded`);
  if (before !== undefined && s.meter) {
    const moved = (await s.meter()) - before;
    // h2load ignores grpc-status: a call answered with an error would pass as a success.
    if (moved !== r.succeeded * MOVES[opts.rpc]) throw new Error(`verification failed: ${name}'s meter moved by ${moved} for ${r.succeeded} successful ${opts.rpc} calls`);
  }
  return { reqPerSec: r.reqPerSec, mainUsPerCall: (main1 - main0) / 1000 / r.succeeded };
}

async function loneRun(s: Server, body: Buffer, opts: AbOptions): Promise<{ p50Ms: number; mainUsPerCall: number }> {
  const path = `${DECISION_SERVICE}/${opts.rpc}`;
  await sequentialLatency(s.client, path, body, LONE_WARMUP, 0);
  const main0 = mainThreadCpuNs(s.child.pid);
  const p = await sequentialLatency(s.client, path, body, 0, opts.calls);
  return { p50Ms: p.p50, mainUsPerCall: (mainThreadCpuNs(s.child.pid) - main0) / 1000 / opts.calls };
}

/**
 * One block: a fresh process of each contender (started in this block's turn order, each on a
 * new data dir), a warm-up run each, `opts.rounds` throughput rounds and as many of lone calls,
 * in the balanced order; then the processes stop and their data goes.
 */
async function runBlock(block: number, contenders: readonly Contender[], work: string, bodyFile: string, body: Buffer, opts: AbOptions, running: Server[]): Promise<void> {
  const t0 = performance.now();
  const dirs: string[] = [];
  for (const contender of roundOrder(contenders, block)) {
    const dir = join(work, `block-${block}-${contenders.indexOf(contender)}`);
    dirs.push(dir);
    const child = await startChild(process.execPath, contender.args(dir));
    const client = rawClient(child.address);
    const meter = contender.stores ? () => sidecarMeter(client, CUSTOMER, "requests") : undefined;
    running.push({ contender, child, client, meter });
  }
  // Listed in the contenders' order, whatever order they started in.
  const servers = contenders.map((c) => running.find((s) => s.contender === c) as Server);
  try {
    // Warm-up (JIT, the row cache, LMDB's first pages); not recorded.
    for (const s of servers) await throughputRun(s, bodyFile, opts);
    for (let i = 0; i < opts.rounds; i++) {
      for (const s of roundOrder(servers, i)) s.contender.throughput.push({ block, ...(await throughputRun(s, bodyFile, opts)) });
    }
    for (let i = 0; opts.calls > 0 && i < opts.rounds; i++) {
      for (const s of roundOrder(servers, i)) s.contender.lone.push({ block, ...(await loneRun(s, body, opts)) });
    }
  } finally {
    await stopServers(running);
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  }
  const mid = (xs: readonly ThroughputSample[]) => fmt(median(xs.filter((x) => x.block === block).map((x) => x.mainUsPerCall)), 1);
  console.error(`block ${block + 1}/${opts.blocks}: main-thread µs per call ${contenders.map((c) => mid(c.throughput)).join(" / ")} (${((performance.now() - t0) / 1000).toFixed(0)} s)`);
}

async function stopServers(running: Server[]): Promise<void> {
  for (const s of running.splice(0)) {
    s.client.close();
    await s.child.stop();
  }
}

// ---------------------------------------------------------------- report

const fmt = (n: number, digits: number): string => (Number.isFinite(n) ? n.toFixed(digits) : "–");
const signed = (n: number, digits: number): string => (n > 0 ? "+" : "") + fmt(n, digits);
/** A difference with its sign; with `unit` unless there is no number to put it on. */
const withUnit = (n: number, digits: number, unit: string): string => (Number.isFinite(n) ? `${signed(n, digits)} ${unit}` : "–");

/** A paired summary; `show` formats a value (signed for differences, plain for ratios). */
function pairedLine(what: string, p: Paired, show: (n: number) => string, won: string): string {
  const verdict = p.resolved ? "" : ", not told apart from none";
  return `  ${what}: median ${show(p.median)}, 95% interval ${show(p.low)} … ${show(p.high)}${verdict} (rounds ${show(p.min)} … ${show(p.max)}; ${won} in ${p.below} of ${p.rounds})`;
}

function report(contenders: readonly Contender[], opts: AbOptions, builds: readonly Build[]): Record<string, unknown> {
  const [empty, a, b] = contenders as [Contender, Contender, Contender];
  const col = (c: Contender) => ({
    reqPerSec: median(c.throughput.map((r) => r.reqPerSec)),
    mainUsPerCall: median(c.throughput.map((r) => r.mainUsPerCall)),
    loneP50Ms: median(c.lone.map((r) => r.p50Ms)),
    loneMainUsPerCall: median(c.lone.map((r) => r.mainUsPerCall)),
  });
  const total = opts.blocks * opts.rounds;
  console.log(`\n${opts.rpc} (${opts.items} item${opts.items === 1 ? "" : "s"}), ${opts.blocks} blocks of fresh processes × ${opts.rounds} rounds in turn: ${opts.requests} requests × ${STREAMS} in flight, then ${opts.calls} lone calls; medians of ${total} rounds`);
  console.log(`${"".padEnd(44)} ${"req/s".padStart(8)} ${"main µs/call".padStart(13)} ${"lone p50 ms".padStart(12)} ${"lone main µs".padStart(13)}`);
  const rows: Record<string, unknown> = {};
  for (const c of contenders) {
    const m = col(c);
    rows[c.name] = m;
    console.log(`${c.name.padEnd(44).slice(0, 44)} ${fmt(m.reqPerSec, 0).padStart(8)} ${fmt(m.mainUsPerCall, 1).padStart(13)} ${fmt(m.loneP50Ms, 3).padStart(12)} ${fmt(m.loneMainUsPerCall, 0).padStart(13)}`);
  }
  const tp = (c: Contender, k: "reqPerSec" | "mainUsPerCall") => c.throughput.map((r) => r[k]);
  const lone = (c: Contender, k: "p50Ms" | "mainUsPerCall") => c.lone.map((r) => r[k]);
  // Every contender has one sample per round, in the same rounds: any one's blocks are everyone's.
  const tpBlocks = empty.throughput.map((r) => r.block);
  const loneBlocks = empty.lone.map((r) => r.block);
  const ratio = { f: (x: number, y: number) => y / x, pivot: 1 };
  const diff = {
    mainUsPerCall: paired(tp(a, "mainUsPerCall"), tp(b, "mainUsPerCall"), { blocks: tpBlocks }),
    reqPerSec: paired(tp(a, "reqPerSec"), tp(b, "reqPerSec"), { ...ratio, blocks: tpBlocks }),
    ...(opts.calls > 0 ? { loneP50Ms: paired(lone(a, "p50Ms"), lone(b, "p50Ms"), { blocks: loneBlocks }) } : {}),
  };
  console.log(`B against A, round by round (intervals drawn by block):`);
  console.log(pairedLine("main-thread µs per call, B − A", diff.mainUsPerCall, (n) => withUnit(n, 1, "µs"), "B cheaper"));
  console.log(pairedLine("req/s, B ÷ A", diff.reqPerSec, (n) => fmt(n, 3), "B slower"));
  if (diff.loneP50Ms) console.log(pairedLine("lone-call p50, B − A", diff.loneP50Ms, (n) => withUnit(n, 3, "ms"), "B faster"));
  // The bench's yardsticks, per round: the empty call's main-thread cost over the build's (the
  // throughput target asks ≥ 0.80), and a lone call's p50 over the empty server's (≤ 1.3).
  const againstEmpty = {
    mainUsPerCall: {
      a: paired(tp(a, "mainUsPerCall"), tp(empty, "mainUsPerCall"), { ...ratio, blocks: tpBlocks }),
      b: paired(tp(b, "mainUsPerCall"), tp(empty, "mainUsPerCall"), { ...ratio, blocks: tpBlocks }),
    },
    ...(opts.calls > 0
      ? {
          loneP50Ms: {
            a: paired(lone(empty, "p50Ms"), lone(a, "p50Ms"), { ...ratio, blocks: loneBlocks }),
            b: paired(lone(empty, "p50Ms"), lone(b, "p50Ms"), { ...ratio, blocks: loneBlocks }),
          },
        }
      : {}),
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
  const body = decisionRequest(opts.rpc, CUSTOMER, opts.items === 1 ? SINGLE : TRIPLE);
  const bodyFile = join(work, "request.bin");
  writeFileSync(bodyFile, grpcFrame(body));
  const contenders: Contender[] = [
    { name: "empty grpc-js server", args: () => [join(ROOT, "build/bench/grpc/empty-server.js")], stores: false, throughput: [], lone: [] },
    ...builds.map((build, i) => ({
      name: `${i === 0 ? "A" : "B"} ${build.label}`,
      args: (dataDir: string) => [join(build.dist, "cli/main.js"), "serve", "--policy", policy, "--data-dir", dataDir, "--grpc-address", "127.0.0.1:0", "--http-address", "off", ...SIDECAR_SERVE_FLAGS],
      stores: true,
      throughput: [],
      lone: [],
    })),
  ];
  const running: Server[] = [];
  const cleanup = async (): Promise<void> => {
    await stopServers(running);
    rmSync(work, { recursive: true, force: true });
  };
  process.once("SIGINT", () => void cleanup().then(() => process.exit(130)));
  try {
    for (let block = 0; block < opts.blocks; block++) await runBlock(block, contenders, work, bodyFile, Buffer.from(body), opts, running);
    const summary = report(contenders, opts, builds);
    const resultsDir = join(ROOT, "bench", "results");
    mkdirSync(resultsDir, { recursive: true });
    const date = new Date().toISOString();
    const file = join(resultsDir, `ab-${date.replace(/[:.]/g, "-")}.json`);
    const raw = Object.fromEntries(contenders.map((c) => [c.name, { throughput: c.throughput, lone: c.lone }]));
    writeFileSync(file, JSON.stringify({ date, options: opts, machine: { cpus: cpus().length, model: cpus()[0]?.model, node: process.version }, ...summary, raw }, null, 1));
    console.log(`\nJSON: ${file}`);
  } finally {
    await cleanup();
  }
}

await main();

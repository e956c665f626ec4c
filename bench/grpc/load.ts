/**
 * Load generators. `h2load` (nghttp2, C) drives throughput and rate-limited latency: it is the
 * cheapest client available, so the two shared cores go to the server under test. It ignores
 * grpc-status, so callers verify the outcome separately. `sequentialLatency` (grpc-js client)
 * times one call at a time. `http2Load` (node:http2, pre-encoded bodies, checks grpc-status)
 * drives loads whose body varies per request (10k distinct customers), which h2load cannot.
 */
import { execFile } from "node:child_process";
import { connect, constants } from "node:http2";
import { readFileSync, rmSync } from "node:fs";
import { fromBinary } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { GetMetersRequestSchema, GetMetersResponseSchema } from "../../src/gen/limitr/v1/decision_pb.js";
import { DECISION_SERVICE, encode } from "./wire.js";

export interface H2loadResult {
  readonly succeeded: number;
  readonly failed: number;
  readonly reqPerSec: number;
  /** Latency percentiles in ms from the per-request log, when one was asked for. */
  readonly latency?: Percentiles;
}

export interface Percentiles {
  readonly p50: number;
  readonly p99: number;
  readonly p999: number;
  readonly count: number;
}

export function percentiles(samplesMs: number[]): Percentiles {
  const s = Float64Array.from(samplesMs).sort();
  const at = (q: number): number => s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? NaN;
  return { p50: at(0.5), p99: at(0.99), p999: at(0.999), count: s.length };
}

export interface H2loadOptions {
  readonly address: string;
  readonly path: string;
  readonly bodyFile: string;
  readonly clients: number;
  readonly streams: number;
  /** Requests to send: a count, not a duration, so that every sent request is answered and counted. */
  readonly requests: number;
  /** Requests per second per client (rate-limited run). */
  readonly rps?: number;
  /** Write per-request times here and return percentiles. */
  readonly logFile?: string;
  /**
   * Shared object preloaded into h2load that lowers its rate timer from 10 ms to 1 ms
   * (h2load-1ms-timer.c); the run fails unless it reports having done so.
   */
  readonly pacer?: string;
}

/** What h2load-1ms-timer.c prints once when it has lowered the rate timer. */
const PACED_MARK = "h2load-1ms-timer: rate timer lowered";

export function h2load(o: H2loadOptions): Promise<H2loadResult> {
  const args = [
    `http://${o.address}${o.path}`,
    "-d", o.bodyFile,
    "-H", "content-type: application/grpc",
    "-H", "te: trailers",
    "-c", String(o.clients),
    "-m", String(o.streams),
    "-n", String(o.requests),
    ...(o.rps === undefined ? [] : ["--rps", String(o.rps)]),
    ...(o.logFile === undefined ? [] : ["--log-file", o.logFile]),
  ];
  // h2load overwrites a log file without truncating it.
  if (o.logFile !== undefined) rmSync(o.logFile, { force: true });
  return new Promise((resolve, reject) => {
    const env = o.pacer === undefined ? process.env : { ...process.env, LD_PRELOAD: o.pacer };
    execFile("h2load", args, { timeout: 120_000, maxBuffer: 1 << 24, env }, (err, stdout, stderr) => {
      if (err) return reject(new Error(`h2load failed: ${err.message}\n${stdout}`));
      // Below 100/s h2load's timer repeats slower than 10 ms and is left alone.
      if (o.pacer !== undefined && o.rps !== undefined && o.rps >= 100 && !stderr.includes(PACED_MARK)) {
        return reject(new Error(`h2load did not take the 1 ms rate timer from ${o.pacer} (libev linked statically?):\n${stderr}`));
      }
      const req = /requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed/.exec(stdout);
      const rate = /finished in [\d.]+m?s, ([\d.]+) req\/s/.exec(stdout);
      if (!req || !rate) return reject(new Error(`cannot parse h2load output:\n${stdout}`));
      let latency: Percentiles | undefined;
      if (o.logFile !== undefined) {
        const samples: number[] = [];
        for (const line of readFileSync(o.logFile, "utf8").split("\n")) {
          const cols = line.split("\t");
          if (cols.length >= 3 && cols[1] === "200") samples.push(Number(cols[2]) / 1000);
        }
        rmSync(o.logFile, { force: true });
        latency = percentiles(samples);
      }
      resolve({ succeeded: Number(req[4]), failed: Number(req[5]), reqPerSec: Number(rate[1]), ...(latency ? { latency } : {}) });
    });
  });
}

const identity = (b: Buffer): Buffer => b;

/** A grpc-js client sending raw protobuf bytes (no per-call encoding in the measured loop). */
export function rawClient(address: string): grpc.Client {
  return new grpc.Client(address, grpc.credentials.createInsecure());
}

export function unaryRaw(client: grpc.Client, path: string, body: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    client.makeUnaryRequest(path, identity, identity, body, (err, res) => (err ? reject(err) : resolve(res ?? Buffer.alloc(0))));
  });
}

/** The sidecar's stored value of `customer`'s `entitlement` meter. */
export async function sidecarMeter(client: grpc.Client, customer: string, entitlement: string): Promise<number> {
  const res = await unaryRaw(client, `${DECISION_SERVICE}/GetMeters`, encode(GetMetersRequestSchema, { customerId: customer, entitlements: [entitlement] }));
  return fromBinary(GetMetersResponseSchema, res).meters[0]?.value ?? 0;
}

/** `count` calls one after another (after `warmup`), each timed; latencies in ms. */
export async function sequentialLatency(client: grpc.Client, path: string, body: Buffer, warmup: number, count: number): Promise<Percentiles> {
  for (let i = 0; i < warmup; i++) await unaryRaw(client, path, body);
  const samples: number[] = [];
  for (let i = 0; i < count; i++) {
    const t0 = performance.now();
    await unaryRaw(client, path, body);
    samples.push(performance.now() - t0);
  }
  return percentiles(samples);
}

export interface Http2LoadResult {
  readonly ok: number;
  readonly failed: number;
  readonly reqPerSec: number;
}

/**
 * Closed loop over one HTTP/2 connection: `inFlight` requests outstanding, bodies taken round-robin
 * from `bodies` (gRPC frames), for `durationS` seconds. Counts calls that ended with grpc-status 0.
 */
export async function http2Load(address: string, path: string, bodies: readonly Buffer[], inFlight: number, durationS: number): Promise<Http2LoadResult> {
  const session = connect(`http://${address}`);
  await new Promise<void>((resolve, reject) => {
    session.once("connect", () => resolve());
    session.once("error", reject);
  });
  const headers = {
    [constants.HTTP2_HEADER_METHOD]: "POST",
    [constants.HTTP2_HEADER_PATH]: path,
    "content-type": "application/grpc",
    te: "trailers",
  };
  let next = 0;
  let ok = 0;
  let failed = 0;
  const deadline = performance.now() + durationS * 1000;
  const t0 = performance.now();
  const one = (): Promise<void> =>
    new Promise((resolve) => {
      const stream = session.request(headers);
      let status: string | undefined;
      stream.on("response", (h) => {
        if (h["grpc-status"] !== undefined) status = String(h["grpc-status"]); // trailers-only answer
      });
      stream.on("trailers", (t) => {
        status = String(t["grpc-status"]);
      });
      stream.on("data", () => {});
      stream.on("close", () => {
        if (status === "0") ok++;
        else failed++;
        resolve();
      });
      stream.end(bodies[next++ % bodies.length]);
    });
  const worker = async (): Promise<void> => {
    while (performance.now() < deadline) await one();
  };
  await Promise.all(Array.from({ length: inFlight }, worker));
  const elapsed = (performance.now() - t0) / 1000;
  session.close();
  return { ok, failed, reqPerSec: ok / elapsed };
}

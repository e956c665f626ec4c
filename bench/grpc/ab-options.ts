/** The command line of `npm run bench:ab` (bench/grpc-ab.ts). */
import type { Rpc } from "./wire.js";

export const USAGE = "usage: npm run bench:ab -- A [B] [--blocks N] [--rounds N] [--requests N] [--calls N] [--rpc Allow|Check|Record] [--items 1|3]";

/** A command line the bench cannot run; the message names what is wrong. */
export class UsageError extends Error {}

export interface AbOptions {
  /** The builds: git revisions or directories holding `cli/main.js`; B undefined = this checkout. */
  readonly a: string;
  readonly b: string | undefined;
  /** Blocks: each starts a fresh process of every server. */
  readonly blocks: number;
  /** Rounds of each phase per block, every server once per round. */
  readonly rounds: number;
  /** Requests per throughput run. */
  readonly requests: number;
  /** Lone calls per round of the second phase; 0 skips it. */
  readonly calls: number;
  readonly rpc: Rpc;
  /** Items per call: 1 (requests) or 3 (input tokens, output tokens, requests), as in the bench. */
  readonly items: 1 | 3;
}

const NAMED = ["--blocks", "--rounds", "--requests", "--calls", "--rpc", "--items"];

export function parseAbOptions(argv: readonly string[]): AbOptions {
  const positional: string[] = [];
  const named = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (!arg.startsWith("--")) positional.push(arg);
    else if (!NAMED.includes(arg)) throw new UsageError(`unknown option ${arg}`);
    else if (i + 1 >= argv.length) throw new UsageError(`${arg} needs a value`);
    else named.set(arg, argv[++i] as string);
  }
  if (positional.length < 1 || positional.length > 2) throw new UsageError(`give one or two builds to compare, got ${positional.length}`);
  const count = (name: string, fallback: number, min: number): number => {
    const raw = named.get(name);
    if (raw === undefined) return fallback;
    const n = Number(raw);
    if (raw.trim() === "" || !Number.isSafeInteger(n) || n < min) throw new UsageError(`${name} must be an integer ≥ ${min}, got ${JSON.stringify(raw)}`);
    return n;
  };
  const rpc = named.get("--rpc") ?? "Allow";
  if (rpc !== "Allow" && rpc !== "Check" && rpc !== "Record") throw new UsageError(`--rpc must be Allow, Check or Record, got ${JSON.stringify(rpc)}`);
  const items = named.get("--items") ?? "1";
  if (items !== "1" && items !== "3") throw new UsageError(`--items must be 1 or 3, got ${JSON.stringify(items)}`);
  return {
    a: positional[0] as string,
    b: positional[1],
    blocks: count("--blocks", 16, 1),
    rounds: count("--rounds", 6, 1),
    requests: count("--requests", 10_000, 100),
    calls: count("--calls", 1000, 0),
    rpc,
    items: items === "1" ? 1 : 3,
  };
}

/**
 * Summarises a V8 `.cpuprofile` (from `node --cpu-prof`): self time by area (grpc-js, node's
 * http2, protobuf-es, connect-es, lmdb, our modules, GC, idle) and the top functions.
 *
 *   node build/bench/grpc/profile-summary.js FILE.cpuprofile
 */
import { readFileSync } from "node:fs";

interface ProfileNode {
  readonly id: number;
  readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number };
  readonly hitCount?: number;
}

interface Profile {
  readonly nodes: readonly ProfileNode[];
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
}

const AREAS: readonly (readonly [RegExp, string])[] = [
  [/@grpc\/grpc-js/, "grpc-js"],
  [/@bufbuild\/protobuf/, "protobuf-es"],
  [/@connectrpc/, "connect-es"],
  [/node_modules\/lmdb|node_modules\/msgpackr/, "lmdb-js + msgpackr"],
  [/\/(dist|src)\/engine\//, "limitr engine"],
  [/\/(dist|src)\/store\//, "limitr store"],
  [/\/(dist|src)\/server\//, "limitr server (mapping, handlers)"],
  [/\/(dist|src)\/gen\//, "limitr generated code"],
  [/\/(dist|src)\/(policy|cli|watch|errors)\//, "limitr policy/cli/watch"],
  [/node:internal\/http2|node:http2/, "node http2"],
  [/node:internal\/(stream|streams)|node:stream/, "node streams"],
  [/node:net|node:internal\/(net|stream_base)/, "node net"],
  [/^node:/, "node (other)"],
];

function areaOf(node: ProfileNode): string {
  const { url, functionName } = node.callFrame;
  if (url === "") {
    if (functionName === "(garbage collector)") return "GC";
    if (functionName === "(idle)") return "idle";
    if (functionName === "(program)") return "(program: native, not attributed)";
    return "native builtins (V8/C++)";
  }
  for (const [re, name] of AREAS) if (re.test(url)) return name;
  return "other JS";
}

export interface ProfileSummary {
  readonly totalMs: number;
  readonly busyMs: number;
  readonly areas: readonly { readonly area: string; readonly ms: number; readonly pctOfBusy: number }[];
  readonly top: readonly { readonly fn: string; readonly ms: number; readonly pctOfBusy: number }[];
}

export function summarizeProfile(file: string, topN = 25): ProfileSummary {
  const profile = JSON.parse(readFileSync(file, "utf8")) as Profile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<number, number>();
  profile.samples.forEach((id, i) => selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));
  const areas = new Map<string, number>();
  const fns = new Map<string, number>();
  let total = 0;
  let idle = 0;
  for (const [id, us] of selfUs) {
    const node = byId.get(id);
    if (!node) continue;
    total += us;
    const area = areaOf(node);
    if (area === "idle") idle += us;
    areas.set(area, (areas.get(area) ?? 0) + us);
    const { functionName, url, lineNumber } = node.callFrame;
    const short = url.replace(/^.*node_modules\//, "").replace(/^file:\/\/.*\/(dist|src)\//, "$1/");
    const key = `${functionName || "(anonymous)"} ${short ? `${short}:${lineNumber + 1}` : ""}`.trim();
    fns.set(key, (fns.get(key) ?? 0) + us);
  }
  const busy = total - idle;
  const pct = (us: number): number => Math.round((us / busy) * 1000) / 10;
  return {
    totalMs: Math.round(total / 1000),
    busyMs: Math.round(busy / 1000),
    areas: [...areas].filter(([a]) => a !== "idle").sort((a, b) => b[1] - a[1]).map(([area, us]) => ({ area, ms: Math.round(us / 1000), pctOfBusy: pct(us) })),
    top: [...fns].filter(([f]) => !f.startsWith("(idle)")).sort((a, b) => b[1] - a[1]).slice(0, topN).map(([fn, us]) => ({ fn, ms: Math.round(us / 1000), pctOfBusy: pct(us) })),
  };
}

export function printProfileSummary(s: ProfileSummary): void {
  console.log(`\nCPU profile: ${s.busyMs} ms busy of ${s.totalMs} ms sampled`);
  console.log("self time by area:");
  for (const a of s.areas) console.log(`  ${a.pctOfBusy.toFixed(1).padStart(5)}%  ${String(a.ms).padStart(6)} ms  ${a.area}`);
  console.log("top functions (self time):");
  for (const f of s.top) console.log(`  ${f.pctOfBusy.toFixed(1).padStart(5)}%  ${String(f.ms).padStart(6)} ms  ${f.fn}`);
}

if (process.argv[1]?.endsWith("profile-summary.js")) {
  const file = process.argv[2];
  if (file === undefined) throw new Error("usage: profile-summary.js FILE.cpuprofile");
  printProfileSummary(summarizeProfile(file));
}

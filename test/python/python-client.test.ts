/**
 * Cross-language proof: Python stubs generated from proto/ with grpc_tools.protoc (Debian
 * python3-grpcio + python3-grpc-tools; .ci/run installs them) call the real sidecar through
 * Allow, Record, GetMeters and WatchEvents, and see exactly what the TypeScript side sees.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, expect, it } from "vitest";
import { startSidecar, stopSidecar, REPO_ROOT, type SidecarProcess } from "../e2e/helpers/sidecar-process.js";

const SCRIPT = fileURLToPath(new URL("./limitr_smoke.py", import.meta.url));
const PROTO = join(REPO_ROOT, "proto");

/** The first python3 that has grpc and grpc_tools (a pyenv shim may shadow Debian's). */
function findPython(): { python: string; wktDir: string } {
  const tried: string[] = [];
  for (const python of ["python3", "/usr/bin/python3"]) {
    const r = spawnSync(python, ["-c", "import grpc, grpc_tools, os; print(os.path.join(os.path.dirname(grpc_tools.__file__), '_proto'))"], { encoding: "utf8" });
    if (r.status === 0) return { python, wktDir: r.stdout.trim() };
    tried.push(`${python}: ${(r.stderr || String(r.error)).trim().split("\n").pop()}`);
  }
  throw new Error(
    `no python3 with grpcio and grpcio-tools found (${tried.join("; ")}).\n` +
      "Install them: apt-get install -y python3-grpcio python3-grpc-tools (.ci/run does this).",
  );
}

/**
 * Generates the stubs. Debian's grpc-tools bundles protoc 3.5, older than proto3 `optional`
 * (3.15); for it the protos are copied with the label dropped so this test can run without
 * network installs. That is NOT wire-compatible for every message: without presence a zero (or
 * empty) value of an `optional` field is not sent, so it reads as absent — amount 0 becomes the
 * limit's increment, from_sequence 0 becomes "live only". The script's other calls send no such
 * value; its zero-amount calls show the difference (docs/clients.md requires protoc >= 3.15).
 */
function generateStubs(python: string, wktDir: string, out: string): { strippedOptional: boolean } {
  const files = readdirSync(join(PROTO, "limitr/v1")).filter((f) => f.endsWith(".proto"));
  const protoc = (root: string) =>
    spawnSync(python, ["-m", "grpc_tools.protoc", `-I${root}`, `-I${wktDir}`, `--python_out=${out}`, `--grpc_python_out=${out}`, ...files.map((f) => join(root, "limitr/v1", f))], { encoding: "utf8" });
  let r = protoc(PROTO);
  if (r.status === 0) return { strippedOptional: false };
  if (!/Explicit 'optional' labels are disallowed/.test(r.stderr)) throw new Error(`grpc_tools.protoc failed:\n${r.stderr}`);
  const copy = join(out, "_proto");
  mkdirSync(join(copy, "limitr/v1"), { recursive: true });
  for (const f of files) writeFileSync(join(copy, "limitr/v1", f), readFileSync(join(PROTO, "limitr/v1", f), "utf8").replace(/^(\s*)optional\s+/gm, "$1"));
  r = protoc(copy);
  if (r.status !== 0) throw new Error(`grpc_tools.protoc failed:\n${r.stderr}`);
  return { strippedOptional: true };
}

let sidecar: SidecarProcess;
let dir: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "limitr-python-"));
  sidecar = await startSidecar(["--policy", "examples/policies/combined.yaml", "--data-dir", join(dir, "data")]);
});

afterAll(async () => {
  if (sidecar) await stopSidecar(sidecar);
  rmSync(dir, { recursive: true, force: true });
});

it("a Python client generated from proto/ decides, records, reads meters and watches events; zero amounts need presence", () => {
  const { python, wktDir } = findPython();
  const stubs = join(dir, "stubs");
  mkdirSync(stubs);
  const { strippedOptional } = generateStubs(python, wktDir, stubs);
  expect(readdirSync(join(stubs, "limitr/v1")).sort()).toContain("decision_pb2_grpc.py");

  const out = JSON.parse(execFileSync(python, [SCRIPT, stubs, sidecar.grpcAddress], { encoding: "utf8", timeout: 60_000 })) as Record<string, unknown>;
  const gpt = { entitlement: "gpt_tokens", owner: "py_user", unit: "token", mode: "LIMIT_MODE_HARD", limit: 2000, has_next_reset: true };
  expect(out["allow"]).toEqual({ allowed: true, reason: "REASON_OK", plan: "free", items: [{ ...gpt, value: 500, remaining: 1500, overage: 0 }] });
  expect(out["allow_again"]).toEqual(out["allow"]);
  expect(out["denied"]).toMatchObject({ allowed: false, reason: "REASON_HARD_LIMIT", denied_item: 1 });
  expect(out["record"]).toEqual({ allowed: true, reason: "REASON_SOFT_LIMIT_EXCEEDED", plan: "free", items: [{ ...gpt, value: 2200, remaining: -200, overage: 200 }] });
  expect(out["meters"]).toEqual([
    { ...gpt, value: 2200, remaining: -200, overage: 200 },
    { ...gpt, entitlement: "claude_tokens", value: 0, remaining: 2000, overage: 0 },
  ]);
  expect(out["error"]).toMatchObject({ code: "INVALID_ARGUMENT" });
  expect((out["error"] as { details: string }).details).toContain("customer_id");

  const events = out["events"] as Record<string, unknown>[];
  const seq = events.map((e) => e["sequence"] as number);
  expect(seq).toEqual([...seq].sort((a, b) => a - b));
  expect(events.map(({ sequence: _s, ...rest }) => rest)).toEqual([
    { type: "EVENT_TYPE_METER_CHANGED", entitlement: "gpt_tokens", old_value: 0, new_value: 500, diff: 500, overage: 0, overage_price: 0, attributes: {}, idempotency_key: "py-allow-1" },
    { type: "EVENT_TYPE_METER_LIMIT", entitlement: "gpt_tokens", old_value: 500, new_value: 2001, diff: 1501, overage: 1, overage_price: 0.00002, attributes: {}, idempotency_key: "" },
    // A change that goes past the limit is reported as the overage event (not also as meter-changed).
    { type: "EVENT_TYPE_METER_OVERAGE", entitlement: "gpt_tokens", old_value: 500, new_value: 2200, diff: 1700, overage: 200, overage_price: 0.004, attributes: { model: "gpt-4o" }, idempotency_key: expect.any(String) },
  ]);

  // Record 0 and Settle at 0 count nothing, when the stubs know presence. Stubs from protos with
  // `optional` stripped send no amount: Record counts the increment (1) and Settle bills the whole
  // 100 held — what docs/clients.md warns about; if this changes, the docs must too.
  expect([out["record_zero"], out["settle_zero"]]).toEqual(strippedOptional ? [1, 100] : [0, 0]);
});

/**
 * A running sidecar whose policy lives in a kubelet-style ConfigMap volume: the tests write
 * policies with the kubelet atomic writer (timestamped dir, `..data` swap), and the sidecar runs
 * with `--policy <dir>/policy.yaml`, exactly as in a pod. Plus the small tools the reload tests
 * share: a policy generator, the content hash, polling with a deadline, status and event reads.
 */
import { mkdtemp, mkdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { stringify } from "yaml";
import { contentVersion } from "../../../src/watch/index.js";
import { createKubeletWriter, type KubeletWriter } from "../../helpers/kubelet-writer.js";
import { connectClients, unary, type Obj, type SidecarClients } from "./clients.js";
import { startSidecar, stopSidecar, type SidecarProcess } from "./sidecar-process.js";

/** One entitlement: a metered limit, or `"flag"` for a feature flag. */
export type EntitlementSpec =
  | "flag"
  | {
      readonly value: number;
      /** `hard` (default), `soft`, `observe`; anything else makes the document invalid. */
      readonly mode?: string;
      /** `reset_sch`, e.g. `monthly:1`, `daily`; absent = never resets. */
      readonly resetSch?: string;
      /** A credit name; `tokenz` (absent from the policy) makes the document invalid. */
      readonly credit?: string;
    };

export interface PlanSpec {
  readonly default?: boolean;
  readonly entitlements: Readonly<Record<string, EntitlementSpec>>;
}

/** A policy as plan name → plan; the credit `token` always exists. */
export type PolicySpec = Readonly<Record<string, PlanSpec>>;

/**
 * The YAML of a policy. `note` goes into a comment, so two documents with the same rules can still
 * differ in bytes (and therefore in version), as two ConfigMap edits do.
 */
export function policyYaml(spec: PolicySpec, note = ""): string {
  const plans: Record<string, unknown> = {};
  for (const [name, plan] of Object.entries(spec)) {
    const entitlements: Record<string, unknown> = {};
    for (const [ent, e] of Object.entries(plan.entitlements)) {
      if (e === "flag") {
        entitlements[ent] = { description: "feature flag" };
        continue;
      }
      const limit: Record<string, unknown> = { credit: e.credit ?? "token", mode: e.mode ?? "hard", value: e.value };
      if (e.resetSch !== undefined) Object.assign(limit, { resets: true, reset_sch: e.resetSch });
      entitlements[ent] = { limit };
    }
    plans[name] = { label: name, ...(plan.default ? { default: true } : {}), entitlements };
  }
  const doc = { policy: { credits: { token: { label: "Token", unit: "token" } }, plans } };
  return `# ${note}\n${stringify(doc)}`;
}

/** The version the sidecar reports for a document: the content hash of its bytes. */
export function versionOf(text: string): string {
  return contentVersion(Buffer.from(text, "utf8"));
}

/** Polls `probe` until it returns something other than undefined, or fails after `timeoutMs`. */
export async function waitFor<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last === undefined ? "" : `; last error: ${String(last)}`}`);
    await sleep(25);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A sidecar serving a policy from a kubelet-style directory. */
export interface ReloadSidecar {
  readonly sidecar: SidecarProcess;
  readonly clients: SidecarClients;
  readonly writer: KubeletWriter;
  /** `<volume dir>/policy.yaml`, as passed to `--policy`. */
  readonly policyPath: string;
  /** Projects `text` as the ConfigMap's `policy.yaml` key (kubelet's atomic swap); returns its version. */
  write(text: string): Promise<string>;
  /** Removes the `policy.yaml` key from the ConfigMap (another key stays, as in a real volume). */
  removeKey(): Promise<void>;
  status(): Promise<Obj>;
  /** Waits (up to `timeoutMs`) until GetPolicyStatus reports `version`; returns that status. */
  waitForVersion(version: string, timeoutMs?: number): Promise<Obj>;
  /** Every event in the log of the given types (EVENT_TYPE_…), oldest first, via ListEvents. */
  events(types?: readonly string[]): Promise<Obj[]>;
  close(): Promise<void>;
}

/** Starts the built sidecar on `initial`, written with the kubelet writer. */
export async function startReloadSidecar(initial: string, flags: readonly string[] = []): Promise<ReloadSidecar> {
  const root = await mkdtemp(join(tmpdir(), "limitr-reload-"));
  const volume = join(root, "policy");
  await mkdir(volume);
  const writer = createKubeletWriter(volume);
  // A second key, so removing `policy.yaml` leaves a ConfigMap that still exists.
  const otherKeys = { "README.txt": "owned by the platform team\n" };
  await writer.write({ "policy.yaml": initial, ...otherKeys });
  const policyPath = join(volume, "policy.yaml");
  let sidecar: SidecarProcess;
  try {
    sidecar = await startSidecar(["--policy", policyPath, "--data-dir", join(root, "data"), ...flags]);
  } catch (e) {
    await rm(root, { recursive: true, force: true });
    throw e;
  }
  const clients = connectClients(sidecar.grpcAddress);
  const status = (): Promise<Obj> => unary(clients.admin, "GetPolicyStatus", {});
  return {
    sidecar,
    clients,
    writer,
    policyPath,
    async write(text) {
      await writer.write({ "policy.yaml": text, ...otherKeys });
      return versionOf(text);
    },
    async removeKey() {
      await writer.write(otherKeys);
    },
    status,
    waitForVersion: (version, timeoutMs = 2_000) =>
      waitFor(`policy version ${version}`, async () => {
        const s = await status();
        return s.version === version ? s : undefined;
      }, timeoutMs),
    async events(types = []) {
      const out: Obj[] = [];
      let token = "";
      for (let pages = 0; pages < 10_000; pages++) {
        const res = await unary(clients.admin, "ListEvents", { types: [...types], page_size: 1000, page_token: token });
        out.push(...(res.events as Obj[]));
        token = res.next_page_token as string;
        if (token === "") return out;
      }
      throw new Error("ListEvents did not end");
    },
    async close() {
      clients.close();
      const exit = await stopSidecar(sidecar);
      await rm(root, { recursive: true, force: true });
      if (exit.code !== 0) throw new Error(`sidecar exited with ${exit.code ?? exit.signal}; logs:\n${JSON.stringify(sidecar.logs.slice(-20), null, 1)}`);
    },
  };
}

/** Epoch ms of a google.protobuf.Timestamp as proto-loader delivers it (`longs: String`). */
export function timestampMs(ts: unknown): number | undefined {
  if (ts === null || typeof ts !== "object") return undefined;
  const t = ts as { seconds?: string | number; nanos?: number };
  return Number(t.seconds ?? 0) * 1000 + Math.floor((t.nanos ?? 0) / 1e6);
}

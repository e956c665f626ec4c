/**
 * A real sidecar gRPC server on 127.0.0.1:0 over the real engine and memory store, and real
 * grpc-js clients built from the repo's proto files with proto-loader (snake_case fields, as a
 * client in another language would see them).
 */
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import * as grpc from "@grpc/grpc-js";
import { loadSync } from "@grpc/proto-loader";
import { createEngine, summarizeHolds } from "../../src/engine/index.js";
import type { Engine, EventLog, StateRecord, Write } from "../../src/engine/index.js";
import { loadPolicy } from "../../src/policy/index.js";
import type { CompiledPolicy } from "../../src/policy/index.js";
import { createSidecarServer, PROTO_DIR } from "../../src/server/index.js";
import type { PolicyStatus, SidecarServer, SidecarServerDeps, StateAdmin } from "../../src/server/index.js";
import { createMemoryStore } from "../../src/store/memory-store.js";
import type { MemoryStore } from "../../src/store/memory-store.js";
import { listProtoFiles } from "../../src/server/reflection.js";

export type Obj = Record<string, unknown>;

/** Loads an example policy from examples/policies. */
export function examplePolicy(name: string): CompiledPolicy {
  const text = readFileSync(fileURLToPath(new URL(`../../examples/policies/${name}`, import.meta.url)), "utf8");
  const result = loadPolicy(text, { version: `v-${name}` });
  if (!result.ok) throw new Error(`example ${name} does not compile: ${JSON.stringify(result.issues)}`);
  return result.policy;
}

/** grpc-js client constructors for limitr.v1 and grpc.health.v1 (from the proto files). */
export function loadClients() {
  const healthRoot = fileURLToPath(new URL("../../node_modules/grpc-health-check/proto", import.meta.url));
  const def = loadSync([...listProtoFiles(PROTO_DIR), "health/v1/health.proto"], {
    includeDirs: [PROTO_DIR, healthRoot],
    keepCase: true,
    longs: String,
    enums: String,
    defaults: true,
    oneofs: true,
  });
  const pkg = grpc.loadPackageDefinition(def) as unknown as {
    limitr: { v1: { DecisionService: grpc.ServiceClientConstructor; AdminService: grpc.ServiceClientConstructor } };
    grpc: { health: { v1: { Health: grpc.ServiceClientConstructor } } };
  };
  return { Decision: pkg.limitr.v1.DecisionService, Admin: pkg.limitr.v1.AdminService, Health: pkg.grpc.health.v1.Health };
}

const clientCtors = loadClients();

/** A promise-returning unary call on a dynamic grpc-js client. */
export function unary<T = Obj>(client: grpc.Client, method: string, req: Obj, options: grpc.CallOptions = {}): Promise<T> {
  return new Promise((resolve, reject) => {
    const fn = (client as unknown as Record<string, grpc.requestCallback<T> & ((...a: unknown[]) => unknown)>)[method];
    if (!fn) throw new Error(`no method ${method}`);
    fn.call(client, req, new grpc.Metadata(), options, (err: grpc.ServiceError | null, res: T) => (err ? reject(err) : resolve(res)));
  });
}

/** The status error a call failed with (fails the test if it succeeded). */
export async function statusOf(p: Promise<unknown>): Promise<grpc.ServiceError> {
  try {
    await p;
  } catch (e) {
    return e as grpc.ServiceError;
  }
  throw new Error("expected the call to fail");
}

/** Collects a server stream until it ends (or `count` messages arrived, then cancels). */
export function collect(stream: grpc.ClientReadableStream<Obj>, count = Infinity): Promise<{ messages: Obj[]; error?: grpc.ServiceError }> {
  return new Promise((resolve) => {
    const messages: Obj[] = [];
    let done = false;
    stream.on("data", (m: Obj) => {
      if (done) return;
      messages.push(m);
      if (messages.length >= count) {
        done = true;
        stream.cancel();
        resolve({ messages });
      }
    });
    stream.on("error", (error: grpc.ServiceError) => {
      if (!done) {
        done = true;
        resolve({ messages, error });
      }
    });
    stream.on("end", () => {
      if (!done) {
        done = true;
        resolve({ messages });
      }
    });
  });
}

export interface LogLine {
  readonly level: string;
  readonly msg: string;
  readonly fields: Readonly<Record<string, unknown>> | undefined;
}

export interface Harness {
  readonly address: string;
  readonly server: SidecarServer;
  readonly store: MemoryStore;
  readonly engine: Engine;
  readonly decision: grpc.Client;
  readonly admin: grpc.Client;
  readonly health: grpc.Client;
  readonly logs: LogLine[];
  /** Sets the engine clock (epoch ms). */
  setNow(ms: number): void;
  close(): Promise<void>;
}

export interface HarnessOptions {
  readonly policy?: CompiledPolicy;
  /** Replaces the real engine (for error-mapping and shutdown tests). */
  readonly engine?: Engine;
  readonly events?: EventLog;
  readonly maxMessageBytes?: number;
  readonly watchBufferEvents?: number;
  readonly policyStatus?: () => PolicyStatus;
  readonly serving?: boolean;
}

/** Import into the memory store by committing the records as writes (the store has no import). */
function memoryStateAdmin(store: MemoryStore): StateAdmin {
  return {
    exportState: () => store.exportState(),
    async importState(records: AsyncIterable<StateRecord>) {
      const writes: Write[] = [];
      let count = 0;
      for await (const r of records) {
        count++;
        if (r.kind === "customer") writes.push({ kind: "customer-put", customer: r.customer, previous: store.getCustomer(r.customer.id) });
        else if (r.kind === "meter") {
          // As the LMDB store imports: the record's holds replace the meter's, its summary made from them.
          const { owner, entitlement } = r.meter;
          writes.push({ kind: "meter-delete", owner, entitlement }, { kind: "meter-put", meter: { ...r.meter, holdSummary: summarizeHolds(r.holds) } });
          for (const hold of r.holds) writes.push({ kind: "hold-put", owner, entitlement, hold });
        } else if (r.kind === "reservation") writes.push({ kind: "reservation-put", reservation: r.reservation });
        else if (r.kind === "idempotency") writes.push({ kind: "idempotency-put", record: r.record });
        // The memory store's numbering is not raised: its log lives as long as the test.
      }
      await store.commit(writes, []);
      return { count };
    },
  };
}

export async function startHarness(options: HarnessOptions = {}): Promise<Harness> {
  const store = createMemoryStore();
  const policy = options.policy ?? examplePolicy("combined.yaml");
  let now = Date.UTC(2026, 0, 15, 12, 0, 0);
  let ids = 0;
  const engine =
    options.engine ?? createEngine({ store, policy: () => policy, clock: () => now, newId: () => `res-${++ids}` });
  const logs: LogLine[] = [];
  const log = (level: string) => (msg: string, fields?: Readonly<Record<string, unknown>>) => void logs.push({ level, msg, fields });
  const deps: SidecarServerDeps = {
    engine,
    events: options.events ?? store,
    policyStatus:
      options.policyStatus ??
      (() => ({ version: policy.version, appliedAt: now, source: "combined.yaml", lastErrors: [], lastRejectedAt: undefined, rejectionsSinceApplied: 0 })),
    state: memoryStateAdmin(store),
    logger: { info: log("info"), warn: log("warn"), error: log("error") },
    ...(options.maxMessageBytes !== undefined ? { maxMessageBytes: options.maxMessageBytes } : {}),
    ...(options.watchBufferEvents !== undefined ? { watchBufferEvents: options.watchBufferEvents } : {}),
  };
  const server = createSidecarServer(deps);
  const address = await server.listen("127.0.0.1:0");
  if (options.serving ?? true) server.setServing(true);
  const creds = grpc.credentials.createInsecure();
  const decision = new clientCtors.Decision(address, creds);
  const admin = new clientCtors.Admin(address, creds);
  const health = new clientCtors.Health(address, creds);
  return {
    address,
    server,
    store,
    engine,
    decision,
    admin,
    health,
    logs,
    setNow: (ms) => {
      now = ms;
    },
    async close() {
      decision.close();
      admin.close();
      health.close();
      await server.shutdown(1000);
    },
  };
}

/**
 * Helpers for the event-stream end-to-end tests: a test policy written to a temp dir, a real
 * sidecar on its own LMDB data dir, a WatchEvents subscriber that records what it received, and
 * ListEvents paged to the end. Everything goes through the real server and real grpc-js clients.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type * as grpc from "@grpc/grpc-js";
import { connectClients, unary, type Obj, type SidecarClients } from "./clients.js";
import { startSidecar, stopSidecar, type SidecarProcess } from "./sidecar-process.js";

/**
 * The events tests' policy. `chat` is hard with thresholds (limit events and threshold events);
 * `tokens` is soft with a price (overage events); `images` is observe (plain meter-changed events,
 * never denied: the load tests use it); `burst` resets every 2 s (threshold-cleared by a reset).
 */
export const EVENTS_POLICY = `
policy:
  credits:
    request: { label: Request, unit: request }
    token:
      label: Token
      unit: token
      price: { amount: 0.01 }
  plans:
    free:
      label: Free
      default: true
      entitlements:
        chat:
          limit: { credit: request, mode: hard, value: 10, thresholds: [50, 80, 100] }
        tokens:
          limit: { credit: token, mode: soft, value: 100 }
        images:
          limit: { credit: request, mode: observe, value: 0 }
        burst:
          limit: { credit: request, mode: hard, value: 10, resets: true, reset_inc: 2s, thresholds: [50, 80, 100] }
`;

/** A temp dir holding `policy.yaml` and a `data` dir; `remove()` deletes it. */
export interface Workspace {
  readonly dir: string;
  readonly policy: string;
  readonly dataDir: string;
  remove(): void;
}

export function createWorkspace(policyText = EVENTS_POLICY): Workspace {
  const dir = mkdtempSync(join(tmpdir(), "limitr-events-e2e-"));
  const policy = join(dir, "policy.yaml");
  writeFileSync(policy, policyText);
  return { dir, policy, dataDir: join(dir, "data"), remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** A running sidecar on a workspace, with clients. */
export interface RunningEventsSidecar {
  readonly process: SidecarProcess;
  readonly clients: SidecarClients;
  /** Closes the clients and SIGTERMs the sidecar; resolves with its exit. */
  stop(): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export async function startEventsSidecar(ws: Workspace, extraFlags: readonly string[] = []): Promise<RunningEventsSidecar> {
  const process = await startSidecar(["--policy", ws.policy, "--data-dir", ws.dataDir, ...extraFlags]);
  const clients = connectClients(process.grpcAddress);
  return {
    process,
    clients,
    stop: async () => {
      clients.close();
      return stopSidecar(process);
    },
  };
}

/** A `WatchEventsResponse` as proto-loader gives it (keepCase, longs and enums as strings). */
export type WatchMessage = Obj & {
  kind?: "event" | "events_lost" | "position";
  event?: EventMsg;
  events_lost?: { requested_sequence: string; first_available_sequence: string };
  position?: { next_sequence: string };
};
export type EventMsg = Obj & { sequence: string; type: string; meter?: Obj & { attributes: Record<string, string> } };

export const seqOf = (e: EventMsg): number => Number(e.sequence);

/** A WatchEvents call that records every message it receives. */
export interface Subscriber {
  readonly call: grpc.ClientReadableStream<WatchMessage>;
  readonly messages: WatchMessage[];
  /** The events received, in order (markers left out). */
  events(): EventMsg[];
  /** Resolves once `done(messages)` holds; rejects if the stream ends first or after `timeoutMs`. */
  until(done: (messages: readonly WatchMessage[]) => boolean, what: string, timeoutMs?: number): Promise<void>;
  /** Resolves when the call ends: with its error status, if any (a cancel gives CANCELLED). */
  readonly ended: Promise<grpc.ServiceError | undefined>;
  cancel(): void;
}

/** Opens WatchEvents with `req` and records its messages (flowing mode: no backpressure). */
export function subscribe(clients: SidecarClients, req: Obj): Subscriber {
  const fn = (clients.decision as unknown as { WatchEvents: (r: Obj) => grpc.ClientReadableStream<WatchMessage> }).WatchEvents;
  const call = fn.call(clients.decision, req);
  const messages: WatchMessage[] = [];
  const waiters = new Set<() => void>();
  let finished = false;
  const ended = new Promise<grpc.ServiceError | undefined>((resolve) => {
    call.on("error", (e: grpc.ServiceError) => {
      finished = true;
      resolve(e);
      for (const w of waiters) w();
    });
    call.on("end", () => {
      finished = true;
      resolve(undefined);
      for (const w of waiters) w();
    });
  });
  call.on("data", (m: WatchMessage) => {
    messages.push(m);
    for (const w of waiters) w();
  });
  return {
    call,
    messages,
    events: () => messages.flatMap((m) => (m.event ? [m.event] : [])),
    until: (done, what, timeoutMs = 45_000) =>
      new Promise<void>((resolve, reject) => {
        // The timeout only turns a hang into a readable failure; nothing is timed.
        const timer = setTimeout(() => finish(new Error(`timed out waiting for ${what}; got ${messages.length} messages`)), timeoutMs);
        const check = (): void => {
          if (done(messages)) finish(undefined);
          else if (finished) finish(new Error(`stream ended before ${what}; got ${messages.length} messages`));
        };
        const finish = (e: Error | undefined): void => {
          clearTimeout(timer);
          waiters.delete(check);
          if (e) reject(e);
          else resolve();
        };
        waiters.add(check);
        check();
      }),
    ended,
    cancel: () => call.cancel(),
  };
}

/** True once an event with sequence >= `seq` was received. */
export const reached =
  (seq: number) =>
  (messages: readonly WatchMessage[]): boolean =>
    messages.some((m) => m.event !== undefined && seqOf(m.event) >= seq);

/** Pages ListEvents to the end; returns every event and the number of pages it took. */
export async function listAllEvents(clients: SidecarClients, req: Obj = {}, pageSize = 1000): Promise<{ events: EventMsg[]; pages: number }> {
  const events: EventMsg[] = [];
  let token = "";
  let pages = 0;
  do {
    const page = await unary<{ events: EventMsg[]; next_page_token: string }>(clients.admin, "ListEvents", {
      ...req,
      page_size: pageSize,
      page_token: token,
    });
    pages += 1;
    events.push(...page.events);
    token = page.next_page_token;
  } while (token !== "");
  return { events, pages };
}

/** The newest sequence in the log (0 when empty). */
export async function lastSequence(clients: SidecarClients): Promise<number> {
  const { events } = await listAllEvents(clients);
  const last = events[events.length - 1];
  return last ? seqOf(last) : 0;
}

/** Where a list of sequence numbers skips (gaps, as [before, after]) or repeats (duplicates). */
export function gapsAndDuplicates(seqs: readonly number[]): { gaps: [number, number][]; duplicates: number[] } {
  const gaps: [number, number][] = [];
  const duplicates: number[] = [];
  for (let i = 1; i < seqs.length; i++) {
    const prev = seqs[i - 1] as number;
    const cur = seqs[i] as number;
    if (cur === prev) duplicates.push(cur);
    else if (cur !== prev + 1) gaps.push([prev, cur]);
  }
  return { gaps, duplicates };
}

/** Runs `count` calls of `fn(i)` with at most `concurrency` in flight. */
export async function runConcurrently(count: number, concurrency: number, fn: (i: number) => Promise<unknown>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < count) {
      const i = next++;
      await fn(i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Keeps the stream table of every HTTP/2 session the gRPC server accepts in V8's young generation.
 *
 * node's `Http2Session` keeps its open streams in a Map: one `set` per new stream, one `delete`
 * when it closes, so under load the Map's backing table fills with holes and is rehashed every few
 * calls. V8 allocates the rehashed table in the generation of the table it replaces, and the
 * replaced table keeps its entries. So once one table is in old space (a mark-compact promoted it,
 * or it lived through two scavenges on a quiet connection), every later table is allocated there
 * too, and every stream, with its grpc-js call, headers, buffers and our request, is referenced
 * from old space and survives each scavenge until the next mark-compact. Measured at 8,000
 * Allows/s on Node 20 and 22: ~2 MB promoted per scavenge instead of ~0.04 MB, scavenges of 3–5 ms
 * instead of ~1 ms, one to three mark-compacts a second, 2–4× the p99, for the life of the
 * connection (docs/performance.md, "The sessions' stream tables").
 *
 * A fresh Map starts young, so replacing each session's Map with a copy after every garbage
 * collection keeps its table young: it never lives through two scavenges, and a mark-compact that
 * promotes it is followed by a renewal.
 *
 * This reaches into two private fields, grpc-js's `Server.http2Servers` and node's session state
 * (the `Symbol("state")` property holding `streams`). Where either is not as expected it does
 * nothing and reports why once: calls are served the same, only the scavenges are longer.
 */
import type { Http2Server, Http2Session } from "node:http2";
import { PerformanceObserver } from "node:perf_hooks";
import { types } from "node:util";

/** Renews the stream Maps of the sessions on the servers it watches, after every GC. */
export interface YoungStreamMaps {
  /**
   * Watches the HTTP/2 servers `grpcServer` is listening with now (call after each bind; a
   * server watched before is skipped). Returns false, and reports why once, when grpc-js's
   * internals are not as expected.
   */
  watch(grpcServer: object): boolean;
  /** Stops observing GCs and forgets the sessions. */
  close(): void;
}

/** The property of node's Http2Session state that holds its open streams. */
interface SessionState {
  streams: Map<number, unknown>;
}

/** The stream Map of a node HTTP/2 session, or undefined where node's internals differ. */
export function sessionStreamMap(session: Http2Session): Map<number, unknown> | undefined {
  return sessionState(session)?.streams;
}

function sessionState(session: Http2Session): SessionState | undefined {
  for (const key of Object.getOwnPropertySymbols(session)) {
    if (key.description !== "state") continue;
    const state: unknown = (session as unknown as Record<symbol, unknown>)[key];
    // node's SafeMap is a Map to V8 but not `instanceof Map` (its prototype chain is cut).
    if (typeof state === "object" && state !== null && types.isMap((state as Partial<SessionState>).streams)) {
      return state as SessionState;
    }
  }
  return undefined;
}

/** The HTTP/2 servers a grpc-js server listens with, or undefined where grpc-js's internals differ. */
export function http2ServersOf(grpcServer: object): Http2Server[] | undefined {
  const servers: unknown = (grpcServer as { http2Servers?: unknown }).http2Servers;
  if (!(servers instanceof Map)) return undefined;
  const keys = [...(servers as Map<unknown, unknown>).keys()];
  return keys.every((s) => typeof (s as Partial<Http2Server> | null)?.on === "function") ? (keys as Http2Server[]) : undefined;
}

/**
 * Builds the renewal; `unsupported` is told once if the internals it relies on are missing.
 * Observes GCs from the first `watch` until `close`.
 */
export function createYoungStreamMaps(unsupported: (reason: string) => void): YoungStreamMaps {
  const watched = new WeakSet<Http2Server>();
  const sessions = new Map<Http2Session, SessionState>();
  let reported = false;
  const report = (reason: string): void => {
    if (reported) return;
    reported = true;
    unsupported(reason);
  };

  const renew = (): void => {
    for (const state of sessions.values()) {
      const old = state.streams;
      // The same class (node's SafeMap), same entries in the same order; only the table is new.
      state.streams = new (old.constructor as MapConstructor)(old);
    }
  };
  let observer: PerformanceObserver | undefined;

  const onSession = (session: Http2Session): void => {
    const state = sessionState(session);
    if (state === undefined) {
      report("node's Http2Session has no state.streams Map");
      return;
    }
    sessions.set(session, state);
    session.once("close", () => sessions.delete(session));
  };

  return {
    watch(grpcServer) {
      const servers = http2ServersOf(grpcServer);
      if (servers === undefined) {
        report("grpc-js's Server has no http2Servers Map");
        return false;
      }
      if (observer === undefined) {
        observer = new PerformanceObserver(renew);
        observer.observe({ entryTypes: ["gc"] });
      }
      for (const server of servers) {
        if (watched.has(server)) continue;
        watched.add(server);
        server.on("session", onSession);
      }
      return true;
    },
    close() {
      observer?.disconnect();
      observer = undefined;
      sessions.clear();
    },
  };
}

/**
 * The gRPC server of the sidecar: DecisionService, AdminService, Health and reflection on one
 * grpc-js server, plus an optional health-only listener for kubelet probes, and graceful shutdown.
 */
import * as grpc from "@grpc/grpc-js";
import type { ServiceImpl } from "@connectrpc/connect";
import { AdminService } from "../gen/limitr/v1/admin_pb.js";
import { DecisionService } from "../gen/limitr/v1/decision_pb.js";
import { createAdminService } from "./admin-service.js";
import { createDecisionService } from "./decision-service.js";
import { guardServiceImpl } from "./guard-service-impl.js";
import { createHealth } from "./health.js";
import { observeServiceImpl, refusedCall } from "./observe-service-impl.js";
import { endStreamsOn } from "./end-streams-on.js";
import { listenersClosed } from "./listeners-closed.js";
import { addReflection } from "./reflection.js";
import { registerGrpcService, transportReceiveLimit } from "./register-grpc-service.js";
import { DEFAULT_MAX_MESSAGE_BYTES, DEFAULT_WATCH_BUFFER_EVENTS } from "./server-deps.js";
import type { SidecarServerDeps, WatchStats } from "./server-deps.js";
import { clearStaleSocket, shareWithGroup, unixSocketPath } from "./unix-socket.js";
import { createWatchRegistry } from "./watch-registry.js";
import { createYoungStreamMaps } from "./young-stream-maps.js";

/** A running (or ready to run) sidecar gRPC server. */
export interface SidecarServer {
  /**
   * Listens on `HOST:PORT` (port 0 picks a free one) or `unix:/path`; resolves with the bound
   * address (`127.0.0.1:43121`, or the unix address as given). May be called more than once.
   */
  listen(address: string): Promise<string>;
  /** Listens on a second address serving only `grpc.health.v1.Health` (kubelet probes). */
  listenHealth(address: string): Promise<string>;
  /** SERVING once the policy is loaded and the store open; NOT_SERVING otherwise. */
  setServing(serving: boolean): void;
  /** Whether health says SERVING now (the HTTP port's `/readyz` answers the same). */
  isServing(): boolean;
  /** The WatchEvents subscribers of both ports now, and how far behind they are (metrics). */
  watchStats(): WatchStats;
  /**
   * NOT_SERVING, end WatchEvents streams (UNAVAILABLE: clients resume elsewhere), stop accepting
   * calls, let in-flight calls finish for up to `graceMs`, then cancel whatever is left.
   */
  shutdown(graceMs: number): Promise<void>;
  /** The DecisionService handlers (errors already mapped), for the connect-node endpoint. */
  readonly decisionService: ServiceImpl<typeof DecisionService>;
  /** The AdminService handlers (errors already mapped), for the connect-node endpoint. */
  readonly adminService: ServiceImpl<typeof AdminService>;
  /** Aborts when shutdown begins; give it to connect-node as its `shutdownSignal`. */
  readonly shutdownSignal: AbortSignal;
  /** The request size limit in force (use it as connect-node's `readMaxBytes` too). */
  readonly maxMessageBytes: number;
}

/** Builds the server; nothing listens until `listen`. */
export function createSidecarServer(deps: SidecarServerDeps): SidecarServer {
  const { logger } = deps;
  const maxMessageBytes = deps.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
  const watchBufferEvents = deps.watchBufferEvents ?? DEFAULT_WATCH_BUFFER_EVENTS;
  const shutdownCtl = new AbortController();
  const health = createHealth();
  const watchers = createWatchRegistry();

  const guardedDecision = guardServiceImpl(
    DecisionService,
    createDecisionService({ engine: deps.engine, events: deps.events, watchBufferEvents, trackWatch: watchers.add }),
    logger,
  );
  const guardedAdmin = guardServiceImpl(
    AdminService,
    createAdminService({ engine: deps.engine, events: deps.events, policyStatus: deps.policyStatus, state: deps.state }),
    logger,
  );
  // One wrapper around the one implementation both ports serve: each call is observed once.
  const observer = deps.callObserver;
  const decisionService = observer ? observeServiceImpl(DecisionService, guardedDecision, observer) : guardedDecision;
  const adminService = observer ? observeServiceImpl(AdminService, guardedAdmin, observer) : guardedAdmin;


  const serverOptions: grpc.ServerOptions = {
    // Above our own limit, so an oversized request reaches our check (INVALID_ARGUMENT naming
    // size and limit) instead of grpc-js's RESOURCE_EXHAUSTED.
    "grpc.max_receive_message_length": transportReceiveLimit(maxMessageBytes),
  };
  const main = new grpc.Server(serverOptions);
  const register = {
    maxMessageBytes,
    logger,
    shutdownSignal: shutdownCtl.signal,
    ...(observer ? { onRefused: (rpc: string, code: number) => observer.callEnded(refusedCall(rpc, "grpc", code)) } : {}),
  };
  registerGrpcService(main, DecisionService, decisionService, register);
  registerGrpcService(main, AdminService, adminService, register);
  // Their streams end with ours at shutdown, so that the shutdown can wait for every stream.
  health.addToServer(endStreamsOn(main, shutdownCtl.signal));
  addReflection(endStreamsOn(main, shutdownCtl.signal));

  let healthServer: grpc.Server | undefined;
  let stopping: Promise<void> | undefined;
  const youngStreamMaps = createYoungStreamMaps((reason) =>
    logger.warn("cannot keep HTTP/2 stream maps young; scavenges under load may take 3-5 ms", { reason }),
  );

  const bind = async (server: grpc.Server, address: string): Promise<string> => {
    const socket = unixSocketPath(address);
    if (socket !== undefined) await clearStaleSocket(socket);
    const port = await new Promise<number>((resolve, reject) => {
      server.bindAsync(address, grpc.ServerCredentials.createInsecure(), (err, bound) => (err ? reject(err) : resolve(bound)));
    });
    youngStreamMaps.watch(server);
    if (socket !== undefined) {
      await shareWithGroup(socket);
      return address;
    }
    return `${address.slice(0, address.lastIndexOf(":"))}:${port}`;
  };

  const stop = async (graceMs: number): Promise<void> => {
    health.setServing(false);
    shutdownCtl.abort();
    const servers = [main, ...(healthServer ? [healthServer] : [])];
    await new Promise<void>((resolve) => {
      let settled = false;
      const finish = (): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        // Cancels what is still open: late calls past the grace period, health Watch streams.
        for (const s of servers) s.forceShutdown();
        youngStreamMaps.close();
        resolve();
      };
      const timer = setTimeout(() => {
        // Sessions still open: calls still running, or answers a client has not read.
        logger.warn("shutdown grace period over; cancelling what is still open", { graceMs });
        finish();
      }, graceMs);
      // Done once every session has closed: every stream over, its answer sent, including those
      // a client is slow to read (a decided Allow is counted; its answer must not be cancelled).
      // Or once every listener has closed, which says the same: tryShutdown alone never calls
      // back when a client dropped its connection just before (listeners-closed.ts).
      const closed = servers.map(listenersClosed);
      if (closed.every((c) => c !== undefined)) void Promise.all(closed).then(finish);
      let pending = servers.length;
      for (const s of servers) s.tryShutdown(() => (--pending === 0 ? finish() : undefined));
    });
    logger.info("grpc server stopped", {});
  };

  return {
    listen: (address) => bind(main, address),
    async listenHealth(address) {
      if (!healthServer) {
        healthServer = new grpc.Server();
        health.addToServer(endStreamsOn(healthServer, shutdownCtl.signal));
      }
      return bind(healthServer, address);
    },
    setServing(serving) {
      if (stopping && serving) return; // never SERVING again once shutdown began
      health.setServing(serving);
    },
    isServing: () => health.isServing(),
    watchStats: () => watchers.stats(deps.events.lastSequence()),
    shutdown(graceMs) {
      stopping ??= stop(graceMs);
      return stopping;
    },
    decisionService,
    adminService,
    shutdownSignal: shutdownCtl.signal,
    maxMessageBytes,
  };
}

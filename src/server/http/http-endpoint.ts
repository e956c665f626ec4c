/**
 * The HTTP port: the same DecisionService and AdminService implementations the gRPC port serves,
 * over the Connect protocol (JSON and binary) and gRPC-Web via connect-node, plus the operator
 * endpoints `/metrics` (Prometheus text), `/healthz` (the process is alive) and `/readyz` (the
 * same state as gRPC health SERVING: policy loaded, store open, not shutting down).
 */
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import { compressionBrotli, compressionGzip, universalRequestFromNodeRequest, universalResponseToNodeResponse } from "@connectrpc/connect-node";
import { Code, ConnectError, createConnectRouter, createContextKey, createContextValues, type Interceptor, type ServiceImpl } from "@connectrpc/connect";
import type { UniversalServerRequest } from "@connectrpc/connect/protocol";
import { AdminService } from "../../gen/limitr/v1/admin_pb.js";
import { DecisionService } from "../../gen/limitr/v1/decision_pb.js";
import { refusedCall } from "../observe-service-impl.js";
import type { CallObserver, ServerLogger } from "../server-deps.js";
import { oversizedRequest } from "../register-grpc-service.js";
import { checkBinaryBodies } from "./check-binary-bodies.js";

/** A Prometheus exposition: the body and its content type. */
export interface MetricsText {
  readonly contentType: string;
  readonly body: string;
}

/** What the HTTP port serves; `SidecarServer` provides all but `metrics` and `logger`. */
export interface HttpEndpointDeps {
  readonly decisionService: ServiceImpl<typeof DecisionService>;
  readonly adminService: ServiceImpl<typeof AdminService>;
  /** Aborts running handlers (WatchEvents streams) when shutdown begins. */
  readonly shutdownSignal: AbortSignal;
  /** Largest accepted request body (connect-node's `readMaxBytes`). */
  readonly maxMessageBytes: number;
  /** `/readyz` is 200 while this is true, 503 otherwise. */
  readonly isServing: () => boolean;
  /** The `/metrics` body; without it `/metrics` is 404. */
  readonly metrics?: () => Promise<MetricsText>;
  readonly logger: ServerLogger;
  /** Told of calls this port refuses before a handler runs (the ServiceImpls report the rest). */
  readonly callObserver?: CallObserver;
}

/** A node:http server for the HTTP port. */
export interface HttpEndpoint {
  /** Listens on `HOST:PORT` (port 0 picks a free one); resolves with the bound `HOST:PORT`. */
  listen(address: string): Promise<string>;
  /**
   * Stops accepting connections, lets in-flight requests finish for up to `graceMs` (streams end
   * through `shutdownSignal`), then closes whatever connection is left.
   */
  close(graceMs: number): Promise<void>;
}

/** What the operator-only listener serves: `/healthz`, `/readyz` and `/metrics`. */
export type OperatorEndpointDeps = Pick<HttpEndpointDeps, "isServing" | "metrics" | "logger">;

/**
 * An HTTP listener with only the operator endpoints, for an address reachable from outside the
 * pod (Prometheus scrapes the pod IP) while the decision and admin APIs stay on loopback.
 */
export function createOperatorEndpoint(deps: OperatorEndpointDeps): HttpEndpoint {
  const operator = operatorEndpoints(deps);
  return serveHttp((req, res) => operator(req, res), deps.logger, "metrics");
}

/** Builds the HTTP port; nothing listens until `listen`. */
export function createHttpEndpoint(deps: HttpEndpointDeps): HttpEndpoint {
  const operator = operatorEndpoints(deps);
  const acceptCompression = [compressionGzip, compressionBrotli];
  const router = createConnectRouter({
    // gRPC needs HTTP/2, which this port does not speak: gRPC clients use the gRPC port.
    grpc: false,
    connect: true,
    grpcWeb: true,
    acceptCompression,
    readMaxBytes: deps.maxMessageBytes,
    shutdownSignal: deps.shutdownSignal,
    // Default-valued fields are written too, so `"allowed": false` is visible to a curl user.
    // An unknown key or enum name is an error: ignored, a typo would drop an idempotency key or
    // empty a `types` filter.
    jsonOptions: { alwaysEmitImplicit: true, ignoreUnknownFields: false },
    interceptors: [streamHeadersNow],
  });
  router.service(DecisionService, deps.decisionService);
  router.service(AdminService, deps.adminService);
  // connectNodeAdapter, but with each handler's binary messages checked before connect-node
  // parses them (see check-binary-bodies.ts) and its failures logged through our logger.
  const routes = new Map(
    router.handlers.map((h) => {
      const refused = (protocol: string): void => deps.callObserver?.callEnded(refusedCall(h.method.name, protocol, Code.InvalidArgument));
      return [h.requestPath, checkBinaryBodies(h, { maxMessageBytes: deps.maxMessageBytes, acceptCompression, logger: deps.logger, onRefused: refused })] as const;
    }),
  );
  return serveHttp(
    (req, res) => {
      const path = (req.url ?? "/").split("?", 1)[0] ?? "";
      // Only the API's own paths: any other is the operator endpoints' (404 if unknown), and a
      // path must never become a metric label (a caller could add series at will).
      const route = routes.get(path);
      if (route === undefined) return operator(req, res);
      // A body declared too large is INVALID_ARGUMENT, as on the gRPC port, answered before
      // connect-node reads it (its own readMaxBytes, which says resource_exhausted, remains the
      // backstop for bodies sent without a length and for each message of a client stream).
      // The limit is per message. A client stream's body holds many messages, so its length says
      // nothing about any one of them: connect-node's readMaxBytes judges each envelope instead.
      const contentType = req.headers["content-type"] ?? "";
      const declared = messageBytes(Number(req.headers["content-length"]), contentType);
      const kind = route.method.methodKind;
      if ((kind === "unary" || kind === "server_streaming") && Number.isFinite(declared) && declared > deps.maxMessageBytes) {
        const protocol = contentType.startsWith("application/grpc-web") ? "grpc-web" : "connect";
        deps.callObserver?.callEnded(refusedCall(route.method.name, protocol, Code.InvalidArgument));
        return refuseOversized(req, res, declared, deps.maxMessageBytes);
      }
      let uReq: UniversalServerRequest;
      try {
        const values = kind === "server_streaming" ? createContextValues().set(SEND_HEADERS, (header) => sendHeadersNow(res, header)) : undefined;
        uReq = universalRequestFromNodeRequest(req, res, undefined, values);
      } catch {
        // Thrown for a request with no authority (HTTP/1.0 without Host). Uncaught, it would end
        // the process: any local client could stop the sidecar with one request.
        res.writeHead(400, { "content-type": "text/plain; charset=utf-8", connection: "close" });
        res.end("a Host header is required\n");
        return;
      }
      route(uReq)
        .then((uRes) => universalResponseToNodeResponse(uRes, res))
        .catch((e: unknown) => {
          // Aborted: the caller went away, nothing to answer.
          if (ConnectError.from(e).code === Code.Aborted) return;
          deps.logger.error("http handler failed", { rpc: `${route.service.typeName}/${route.method.name}`, err: e });
        });
    },
    deps.logger,
    "http",
  );
}

/** How a server stream's handler reaches its node response to send the headers (see below). */
const SEND_HEADERS = createContextKey<((header: Headers) => void) | undefined>(undefined, { description: "send a stream's response headers" });

/**
 * connect-node sends a stream's response headers with its first message, and a filtered
 * WatchEvents may have none for hours: a client or proxy waiting on headers would time the call
 * out. Once the request has parsed and the handler is running, the headers are final (our
 * handlers add none), so they go out at once; an error after that ends the stream in its body
 * (Connect's end-of-stream message, gRPC-Web's trailer frame) as it does after a message.
 */
const streamHeadersNow: Interceptor = (next) => async (req) => {
  const res = await next(req);
  if (res.stream && req.method.methodKind === "server_streaming") req.contextValues.get(SEND_HEADERS)?.(res.header);
  return res;
};

/** Writes the status line and `header` now, and makes connect-node's own writeHead a no-op. */
function sendHeadersNow(res: http.ServerResponse, header: Headers): void {
  if (res.headersSent || res.destroyed) return;
  res.writeHead(200, Object.fromEntries(header));
  res.flushHeaders();
  // connect-node writes the head with the first message, or at the end; it is out already.
  res.writeHead = (() => res) as typeof res.writeHead;
}

/**
 * The size of the one message a body of `bodyBytes` carries: gRPC-Web and Connect's streaming
 * types frame it behind a 5-byte prefix (base64-encoded in grpc-web-text), which the limit, a
 * message size as on the gRPC port, does not count.
 */
function messageBytes(bodyBytes: number, contentType: string): number {
  if (contentType.startsWith("application/grpc-web-text")) return Math.floor((bodyBytes * 3) / 4) - 5;
  if (contentType.startsWith("application/grpc-web") || contentType.startsWith("application/connect+")) return bodyBytes - 5;
  return bodyBytes;
}

/** The oversized-request error in the caller's protocol: gRPC-Web trailers-only, else Connect JSON. */
function refuseOversized(req: http.IncomingMessage, res: http.ServerResponse, bytes: number, max: number): void {
  const message = oversizedRequest(bytes, max).message;
  const contentType = req.headers["content-type"] ?? "";
  // The body is not read: close the connection after answering rather than drain it.
  res.setHeader("connection", "close");
  if (contentType.startsWith("application/grpc-web")) {
    res.writeHead(200, { "content-type": contentType, "grpc-status": "3", "grpc-message": encodeURIComponent(message) });
    res.end();
    return;
  }
  res.writeHead(400, { "content-type": "application/json" });
  res.end(JSON.stringify({ code: "invalid_argument", message }));
}

function operatorEndpoints(deps: OperatorEndpointDeps): (req: http.IncomingMessage, res: http.ServerResponse) => void {
  const { logger } = deps;
  const text = (res: http.ServerResponse, status: number, body: string, contentType = "text/plain; charset=utf-8"): void => {
    res.writeHead(status, { "content-type": contentType, "cache-control": "no-store" });
    res.end(body);
  };
  return (req, res) => {
    const path = (req.url ?? "/").split("?", 1)[0];
    const known = path === "/healthz" || path === "/readyz" || (path === "/metrics" && deps.metrics !== undefined);
    if (!known) return text(res, 404, "not found\n");
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.setHeader("allow", "GET, HEAD");
      return text(res, 405, "method not allowed\n");
    }
    if (path === "/healthz") return text(res, 200, "ok\n");
    if (path === "/readyz") return deps.isServing() ? text(res, 200, "ready\n") : text(res, 503, "not ready\n");
    deps.metrics?.().then(
      (m) => text(res, 200, m.body, m.contentType),
      (e: unknown) => {
        logger.error("metrics collection failed", { err: e });
        text(res, 500, "metrics collection failed\n");
      },
    );
  };
}

/** A node:http server with listen on HOST:PORT and a bounded, graceful close. */
function serveHttp(
  handler: (req: http.IncomingMessage, res: http.ServerResponse) => void,
  logger: ServerLogger,
  name: string,
): HttpEndpoint {
  let closing = false;
  const server = http.createServer((req, res) => {
    // Once closing, a keep-alive connection is closed as soon as its answer is out (also for
    // calls that were already in flight when shutdown began), instead of idling until its timeout.
    res.once("close", () => {
      if (closing) setImmediate(() => server.closeIdleConnections());
    });
    handler(req, res);
  });

  let stopped: Promise<void> | undefined;
  const stop = (graceMs: number): Promise<void> =>
    new Promise<void>((resolve) => {
      closing = true;
      if (!server.listening) return resolve();
      const timer = setTimeout(() => {
        logger.warn(`${name} shutdown grace period over; closing connections`, { graceMs });
        server.closeAllConnections();
      }, graceMs);
      server.close(() => {
        clearTimeout(timer);
        logger.info(`${name} server stopped`, {});
        resolve();
      });
      server.closeIdleConnections();
    });

  return {
    listen(address) {
      const colon = address.lastIndexOf(":");
      const host = address.slice(0, colon).replace(/^\[(.*)\]$/, "$1");
      const port = Number(address.slice(colon + 1));
      return new Promise((resolve, reject) => {
        const onError = (e: Error): void => reject(e);
        server.once("error", onError);
        server.listen({ host, port }, () => {
          server.off("error", onError);
          const bound = server.address() as AddressInfo;
          resolve(`${bound.family === "IPv6" ? `[${bound.address}]` : bound.address}:${bound.port}`);
        });
      });
    },
    close(graceMs) {
      stopped ??= stop(graceMs);
      return stopped;
    },
  };
}

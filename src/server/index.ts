/**
 * Server: the gRPC transport (and the handler objects the connect-node endpoint reuses). It maps
 * proto ↔ domain, maps errors to status, serves health and reflection, and streams events; every
 * decision comes from the engine.
 */

/** Builds the sidecar's gRPC server from an engine, event log, policy status and store access. */
export { createSidecarServer, type SidecarServer } from "./sidecar-server.js";
/** What `createSidecarServer` needs, and the shapes it exchanges with the store and the CLI. */
export type {
  CallEnd,
  CallObserver,
  EventPage,
  EventQuery,
  PolicyStatus,
  ServerLogger,
  SidecarServerDeps,
  StateAdmin,
  WatchStats,
} from "./server-deps.js";
/** Defaults of `SidecarServerDeps` (1 MiB requests, 1024 buffered events per subscriber). */
export { DEFAULT_MAX_MESSAGE_BYTES, DEFAULT_WATCH_BUFFER_EVENTS } from "./server-deps.js";
/** The one error → status mapping (Connect codes are gRPC status numbers). */
export { toConnectError, toGrpcStatus } from "./to-connect-error.js";
/** Registers any protobuf-es service + connect-es implementation on a grpc-js server. */
export { registerGrpcService, type RegisterOptions } from "./register-grpc-service.js";
/** A ListEvents answer by scanning the event log, for stores without an indexed query. */
export { scanEventLog } from "./scan-event-log.js";
/** The directory of the served `.proto` files (for reflection and proto-loader clients). */
export { PROTO_DIR } from "./reflection.js";
/** Stored state records ↔ proto `StateRecord` (ExportState/ImportState, and the CLI's JSON Lines files). */
export { toStateRecordPb, fromStateRecordPb } from "./map-state.js";
/** The HTTP port: Connect (JSON, binary) and gRPC-Web for both services, /metrics, /healthz, /readyz. */
export { createHttpEndpoint, type HttpEndpoint, type HttpEndpointDeps, type MetricsText } from "./http/http-endpoint.js";
/** An HTTP listener with only /metrics, /healthz and /readyz (for the pod IP; APIs stay on loopback). */
export { createOperatorEndpoint, type OperatorEndpointDeps } from "./http/http-endpoint.js";
/** grpc-js's own messages as JSON log lines, like every other line on stderr. */
export { routeGrpcLogs } from "./grpc-logs.js";

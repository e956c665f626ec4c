/**
 * grpc-js writes its own messages (a bind that failed, `GRPC_TRACE` output) to stderr as plain
 * `E …` lines by default, among the JSON lines log shippers parse.
 */
import { format } from "node:util";
import * as grpc from "@grpc/grpc-js";
import type { ServerLogger } from "./server-deps.js";

/**
 * Sends grpc-js's messages through `logger` as JSON lines, with the message's text. grpc-js has
 * one logger per process, so this is process-wide. Which messages come is still grpc-js's to say
 * (`GRPC_VERBOSITY`, default ERROR; `GRPC_TRACE`), so those stay the way to debug it.
 */
export function routeGrpcLogs(logger: ServerLogger): void {
  const fields = { component: "grpc-js" };
  grpc.setLogger({
    error: (...args: unknown[]) => logger.error(format(...args), fields),
    info: (...args: unknown[]) => logger.info(format(...args), fields),
    debug: (...args: unknown[]) => logger.info(format(...args), fields),
  });
}

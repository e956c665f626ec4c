/**
 * When a grpc-js server's graceful shutdown is really over: every HTTP/2 listener it was bound
 * with has closed, which node reports only once each of its connections has closed too.
 *
 * grpc-js's `tryShutdown` calls back once every session it knows of has called back from
 * `session.close(cb)`. Node ignores `close()` on a session that is already destroyed but has not
 * yet emitted `close`, callback included, so such a session is never counted as closed. A client
 * that drops its connection with an error GOAWAY leaves its session in that state for a few event
 * loop turns (connect-node's, and so the bundled client's, `close()` sends CANCEL); a SIGTERM
 * handled in those turns, typically in the same turn of a busy event loop, waited out the whole
 * grace period with no call left to answer. The listeners closing does not depend on that
 * bookkeeping, and waits no less: a connection closes only once its answers have left.
 *
 * Reaches into grpc-js's private `Server.http2Servers` (see young-stream-maps.ts).
 */
import type { Http2Server } from "node:http2";
import { http2ServersOf } from "./young-stream-maps.js";

/**
 * Settles once every listener `grpcServer` is bound with now has closed; call it before the
 * shutdown that closes them. Undefined where grpc-js's internals differ: `tryShutdown` alone then.
 */
export function listenersClosed(grpcServer: object): Promise<void> | undefined {
  const servers = http2ServersOf(grpcServer);
  if (servers === undefined) return undefined;
  return Promise.all(servers.map(closed)).then(() => undefined);
}

function closed(server: Http2Server): Promise<void> {
  return new Promise((resolve) => server.once("close", () => resolve()));
}

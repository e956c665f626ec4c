/**
 * Writes the responses of a grpc-js server stream, those of one event-loop turn in one HTTP/2
 * write.
 *
 * grpc-js writes each response on its own: its object-mode Writable hands the HTTP/2 stream one
 * message and takes the next only when that write has completed, so a WatchEvents subscriber
 * following a commit of six decisions costs six trips through grpc-js, node's http2 Writable and
 * its native write, and six DATA frames for the client to read. Measured with ten streams and six
 * messages per stream every millisecond (scratch script, 5 s, three runs): 4.2–4.7 µs of server
 * CPU per message that way, 1.6 µs framed and written together, and the receiving process used
 * 28–33% of a core instead of 20% (docs/performance.md, "One write per turn").
 *
 * So the bridge queues a turn's responses here and writes them, each with gRPC's 5-byte length
 * prefix, to the call's HTTP/2 stream in one write on the next tick. Like any Writable, the
 * writer asks its producer to wait once what it holds (its queue and the stream's buffer) reaches
 * the stream's high-water mark, and writes its queue before the wait: a client that reads slowly
 * keeps that much of a subscriber's events in memory here, not a turn's worth.
 *
 * The HTTP/2 stream is a private field of grpc-js's call (`call.stream` of the call's `call`);
 * where it is not found, or a server interceptor sits in between, responses go through
 * `call.write` as before and `unsupported` hears why. Skipped with grpc-js's own write: its trace
 * line and the channelz count of messages sent (neither is used here), and its send-size limit
 * (unset on this server, so unlimited). grpc-js never compresses responses.
 */
import { Metadata } from "@grpc/grpc-js";
import type * as grpc from "@grpc/grpc-js";

/** Where a server-streaming handler's responses go. */
export interface StreamWriter {
  /** Queues `response`. False when the client is behind: wait for `drained()` before writing more. */
  write(response: unknown): boolean;
  /** Writes what is queued now; call before ending the call, since the end must follow it. */
  flush(): void;
  /** Settles once the client has caught up, or the call is over. */
  drained(): Promise<void>;
}

/** The gRPC length prefix: a compressed flag (0) and the message length, big-endian. */
const PREFIX_BYTES = 5;

/** What `firstOf` needs of an event emitter. */
interface Listenable {
  once(event: string, listener: () => void): unknown;
  off(event: string, listener: () => void): unknown;
}

/** The part of node's `Http2Stream` used here. */
interface Http2StreamLike extends Listenable {
  readonly destroyed: boolean;
  readonly writableEnded: boolean;
  readonly writableNeedDrain: boolean;
  readonly writableLength: number;
  readonly writableHighWaterMark: number;
  readonly headersSent: boolean;
  write(chunk: Uint8Array, cb: (err?: Error | null) => void): boolean;
  respond: unknown;
}

/** The HTTP/2 stream under a grpc-js server call, or undefined where grpc-js's internals differ. */
function http2StreamOf(call: object): Http2StreamLike | undefined {
  const inner: unknown = (call as { call?: unknown }).call;
  if (typeof inner !== "object" || inner === null) return undefined;
  const stream: unknown = (inner as { stream?: unknown }).stream;
  if (typeof stream !== "object" || stream === null) return undefined;
  const s = stream as Partial<Http2StreamLike>;
  const looksRight =
    typeof s.write === "function" &&
    typeof s.respond === "function" &&
    typeof s.once === "function" &&
    typeof s.headersSent === "boolean" &&
    typeof s.writableNeedDrain === "boolean" &&
    typeof s.writableLength === "number" &&
    typeof s.writableHighWaterMark === "number";
  return looksRight ? (stream as Http2StreamLike) : undefined;
}

/** Ignores a write's outcome: a failed write destroys the stream, which grpc-js reports as cancelled. */
const ignore = (): void => {};

/**
 * A writer for `call`'s responses, encoded by `serialize`, the method's own response serializer
 * (which grpc-js applies to what goes through `call.write`). `unsupported` is told why whenever
 * the writer has to use `call.write` instead (the caller reports it once).
 */
export function createStreamWriter(
  call: grpc.ServerWritableStream<unknown, unknown>,
  serialize: (response: unknown) => Uint8Array,
  unsupported: (reason: string) => void,
): StreamWriter {
  const stream = http2StreamOf(call);
  if (stream === undefined) {
    unsupported("grpc-js's server call has no call.stream HTTP/2 stream");
    return callWriter(call);
  }
  const over = (): boolean => call.cancelled || stream.destroyed || stream.writableEnded;
  let queue: Uint8Array[] = [];
  let queued = 0;
  let flushScheduled = false;
  let fallback: StreamWriter | undefined;

  const flush = (): void => {
    flushScheduled = false;
    if (queue.length === 0) return;
    const messages = queue;
    const bytes = queued;
    queue = [];
    queued = 0;
    if (!over()) stream.write(framed(messages, bytes), ignore);
  };
  const flushLater = (): void => {
    if (flushScheduled) flush();
  };

  return {
    write(response) {
      if (fallback !== undefined) return fallback.write(response);
      if (over()) return true;
      if (!stream.headersSent) {
        // The headers go out through grpc-js's own call, so that its end of the call (trailers,
        // or a trailers-only error) still follows. registerGrpcService sends them as the stream
        // starts; this is for a writer on a call that has not.
        call.sendMetadata(new Metadata());
        if (!stream.headersSent) {
          unsupported("grpc-js did not send the response headers on sendMetadata");
          fallback = callWriter(call);
          return fallback.write(response);
        }
      }
      const message = serialize(response);
      queue.push(message);
      queued += PREFIX_BYTES + message.length;
      if (!flushScheduled) {
        flushScheduled = true;
        process.nextTick(flushLater);
      }
      return queued + stream.writableLength < stream.writableHighWaterMark;
    },
    flush,
    drained() {
      if (fallback !== undefined) return fallback.drained();
      flush();
      return stream.writableNeedDrain && !over() ? firstOf(stream, "drain", "close") : Promise.resolve();
    },
  };
}

/** `messages` as gRPC length-prefixed messages, end to end, in one buffer of `bytes`. */
function framed(messages: readonly Uint8Array[], bytes: number): Buffer {
  const out = Buffer.allocUnsafe(bytes);
  let at = 0;
  for (const m of messages) {
    out[at] = 0;
    out.writeUInt32BE(m.length, at + 1);
    out.set(m, at + PREFIX_BYTES);
    at += PREFIX_BYTES + m.length;
  }
  return out;
}

/** grpc-js's own path, one response at a time. */
function callWriter(call: grpc.ServerWritableStream<unknown, unknown>): StreamWriter {
  return {
    write: (response) => call.write(response),
    flush: () => {},
    drained: () => (call.writableNeedDrain && !call.cancelled ? firstOf(call, "drain", "cancelled") : Promise.resolve()),
  };
}

/** Settles when `emitter` emits `a` or `b`, whichever comes first, and stops listening for both. */
function firstOf(emitter: Listenable, a: string, b: string): Promise<void> {
  return new Promise<void>((resolve) => {
    const ready = (): void => {
      emitter.off(a, ready);
      emitter.off(b, ready);
      resolve();
    };
    emitter.once(a, ready);
    emitter.once(b, ready);
  });
}

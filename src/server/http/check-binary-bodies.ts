/**
 * connect-node answers a binary request message that does not decode (a string that is not UTF-8,
 * a field sent with the wrong wire type, a truncated message) with INTERNAL: HTTP 500 in Connect,
 * grpc-status 13 in gRPC-Web, a server fault. The fault is the caller's, and the gRPC port answers
 * the same bytes INVALID_ARGUMENT (SPEC §6). connect-node has no hook for its parse, so each binary
 * message is decoded here first, as the body streams in; one that does not decode ends the body
 * with the gRPC port's error, which connect-node then answers in the caller's protocol as it does
 * any failure to read a body. JSON bodies are left to connect-node, which already says
 * invalid_argument.
 */
import { fromBinary } from "@bufbuild/protobuf";
import type { Compression, UniversalHandler, UniversalServerRequest } from "@connectrpc/connect/protocol";
import { decisionRequestDecoder } from "../decode-decision.js";
import { undecodableRequest } from "../register-grpc-service.js";
import type { ServerLogger } from "../server-deps.js";
import { toConnectError } from "../to-connect-error.js";

/** Options of `checkBinaryBodies`. */
export interface BinaryBodyOptions {
  /** connect-node's `readMaxBytes`: a larger message is left for connect-node to refuse. */
  readonly maxMessageBytes: number;
  /** The compressions connect-node accepts, to read a compressed message the way it will. */
  readonly acceptCompression: readonly Compression[];
  readonly logger: ServerLogger;
  /**
   * Told when a unary or server-streaming call is refused here (its handler never runs to report
   * it); a client stream's handler is running and reports its own end.
   */
  readonly onRefused?: (protocol: "connect" | "grpc-web") => void;
}

/** How a binary body carries its messages, by content type; `undefined` for any other body. */
interface Framing {
  readonly protocol: "connect" | "grpc-web";
  /** Behind 5-byte envelope prefixes (streaming Connect, gRPC-Web), or the body is the message. */
  readonly enveloped: boolean;
  /** The header naming the compression of the body (unary) or of flagged envelopes. */
  readonly encodingHeader: string;
}

function framingOf(req: UniversalServerRequest): Framing | undefined {
  if (req.method !== "POST") return undefined;
  const type = (req.header.get("content-type") ?? "").split(";", 1)[0]?.trim().toLowerCase();
  if (type === "application/proto") return { protocol: "connect", enveloped: false, encodingHeader: "content-encoding" };
  if (type === "application/connect+proto") return { protocol: "connect", enveloped: true, encodingHeader: "connect-content-encoding" };
  if (type === "application/grpc-web" || type === "application/grpc-web+proto") return { protocol: "grpc-web", enveloped: true, encodingHeader: "grpc-encoding" };
  return undefined;
}

/** `handler`, with each binary request message decoded before connect-node sees it. */
export function checkBinaryBodies(handler: UniversalHandler, options: BinaryBodyOptions): UniversalHandler {
  const { method } = handler;
  const schema = method.input;
  const fast = decisionRequestDecoder(schema);
  const rpc = `${method.parent.typeName}/${method.name}`;
  const counted = method.methodKind === "unary" || method.methodKind === "server_streaming";
  const checked = (req: UniversalServerRequest) => {
    const framing = framingOf(req);
    const body = req.body;
    if (framing === undefined || !isByteStream(body)) return handler(req);
    const encoding = req.header.get(framing.encodingHeader) ?? "identity";
    const compression = options.acceptCompression.find((c) => c.name === encoding);
    const check = async (bytes: Uint8Array, compressed: boolean): Promise<void> => {
      let message = bytes;
      if (compressed) {
        // A compression connect-node cannot undo, or a body it cannot inflate, is its to refuse.
        if (compression === undefined) return;
        try {
          message = await compression.decompress(bytes, options.maxMessageBytes);
        } catch {
          return;
        }
      }
      try {
        const buf = Buffer.from(message.buffer, message.byteOffset, message.byteLength);
        if (fast?.(buf) === undefined) fromBinary(schema, message);
      } catch (e) {
        if (counted) options.onRefused?.(framing.protocol);
        throw toConnectError(undecodableRequest(schema, e), options.logger, rpc);
      }
    };
    const max = options.maxMessageBytes;
    return handler({
      ...req,
      body: framing.enveloped ? checkEnvelopes(body, max, check) : checkWhole(body, max, (bytes) => check(bytes, encoding !== "identity")),
    });
  };
  return Object.assign(checked, {
    protocolNames: handler.protocolNames,
    service: handler.service,
    method,
    requestPath: handler.requestPath,
    allowedMethods: handler.allowedMethods,
    supportedContentType: handler.supportedContentType,
  });
}

function isByteStream(body: UniversalServerRequest["body"]): body is AsyncIterable<Uint8Array> {
  return typeof body === "object" && body !== null && Symbol.asyncIterator in body;
}

/** A body that is one message: read whole, checked, then handed on. */
async function* checkWhole(body: AsyncIterable<Uint8Array>, max: number, check: (message: Uint8Array) => Promise<void>): AsyncGenerator<Uint8Array> {
  const it = body[Symbol.asyncIterator]();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (let next = await it.next(); next.done !== true; next = await it.next()) {
    chunks.push(next.value);
    size += next.value.byteLength;
    if (size > max) {
      // Over the limit: connect-node refuses it as it reads on; holding it all here would not.
      yield* chunks;
      yield* rest(it);
      return;
    }
  }
  const message = chunks.length === 1 && chunks[0] !== undefined ? chunks[0] : Buffer.concat(chunks, size);
  await check(message);
  yield message;
}

/**
 * A body of enveloped messages (flags byte, 4-byte big-endian length, message): each complete
 * envelope is checked, then handed on, so a client stream still streams and its messages before a
 * bad one are processed, as on the gRPC port.
 */
async function* checkEnvelopes(
  body: AsyncIterable<Uint8Array>,
  max: number,
  check: (message: Uint8Array, compressed: boolean) => Promise<void>,
): AsyncGenerator<Uint8Array> {
  const it = body[Symbol.asyncIterator]();
  let pending: Uint8Array = new Uint8Array(0);
  for (let next = await it.next(); next.done !== true; next = await it.next()) {
    pending = pending.byteLength === 0 ? next.value : Buffer.concat([pending, next.value]);
    while (pending.byteLength >= 5) {
      const flags = pending[0] ?? 0;
      const length = new DataView(pending.buffer, pending.byteOffset, 5).getUint32(1);
      if (length > max) {
        // connect-node refuses an envelope over readMaxBytes; it is handed on unread.
        yield pending;
        yield* rest(it);
        return;
      }
      if (pending.byteLength < 5 + length) break;
      // Flags other than "compressed" (0x01) are connect-node's to judge.
      if ((flags & ~0x01) === 0) await check(pending.subarray(5, 5 + length), flags === 0x01);
      yield pending.subarray(0, 5 + length);
      pending = pending.subarray(5 + length);
    }
  }
  // An incomplete envelope: connect-node says so.
  if (pending.byteLength > 0) yield pending;
}

async function* rest(it: AsyncIterator<Uint8Array>): AsyncGenerator<Uint8Array> {
  for (let next = await it.next(); next.done !== true; next = await it.next()) yield next.value;
}

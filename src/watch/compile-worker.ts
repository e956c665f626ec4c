/**
 * The body of the policy compile worker (see `create-worker-compiler.ts`): compiles each
 * document it is sent with `loadPolicy`, the same function the main thread runs, and posts the
 * result back. A `CompileResult` is plain data (objects, Maps, Sets, bigints), so it arrives
 * whole through the structured clone.
 */
import { parentPort } from "node:worker_threads";
import { loadPolicy } from "../policy/index.js";
import type { CompileReply, CompileRequest } from "./create-worker-compiler.js";

const port = parentPort;
if (port === null) throw new Error("compile-worker runs as a worker thread only");
port.on("message", (req: CompileRequest) => {
  let reply: CompileReply;
  try {
    reply = { id: req.id, ok: true, result: loadPolicy(req.text, { version: req.version }) };
  } catch (err) {
    reply = { id: req.id, ok: false, message: err instanceof Error ? err.message : String(err) };
  }
  port.postMessage(reply);
});

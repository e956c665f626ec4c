// A stand-in for dist/watch/compile-worker.js whose behaviour each document scripts: "exit"
// exits the worker, "hang" never answers, "throw" reports a compiler exception; any other text
// is answered with a rejection naming the text and the worker's thread id (so a test can tell
// a restarted worker from the first one).
import process from "node:process";
import { parentPort, threadId } from "node:worker_threads";

parentPort.on("message", ({ id, text }) => {
  if (text === "exit") process.exit(3);
  if (text === "hang") return;
  if (text === "throw") return parentPort.postMessage({ id, ok: false, message: "boom" });
  parentPort.postMessage({ id, ok: true, result: { ok: false, issues: [{ kind: "error", path: "policy", message: `${text} on ${threadId}` }] } });
});

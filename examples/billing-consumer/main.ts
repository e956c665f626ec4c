/** `npm run example:billing`: prints a billing line per overage; Ctrl-C and run again to resume. */
import { createLimitrClient } from "../../src/client/index.js";
import { runBillingConsumer } from "./billing-consumer.js";

const limitr = createLimitrClient({
  address: process.env["LIMITR_ADDRESS"] ?? "127.0.0.1:50051",
  onRetry: (i) => console.error(`sidecar unreachable (${i.error.message}); reconnecting in ${i.delayMs} ms`),
});
const stop = new AbortController();
process.once("SIGINT", () => stop.abort()).once("SIGTERM", () => stop.abort());
const cursorFile = process.env["CURSOR_FILE"] ?? "billing-cursor.json";
console.error(`billing consumer: cursor in ${cursorFile}; waiting for meter-overage events`);
await runBillingConsumer({ limitr, cursorFile, print: (l) => console.log(l), warn: (l) => console.error(`warning: ${l}`), signal: stop.signal });
limitr.close();

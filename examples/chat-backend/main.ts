/** `npm run example:chat`: the chat backend on PORT (3000) against the sidecar at LIMITR_ADDRESS. */
import { createLimitrClient } from "../../src/client/index.js";
import { createChatServer } from "./chat-server.js";

const limitr = createLimitrClient({ address: process.env["LIMITR_ADDRESS"] ?? "127.0.0.1:50051" });
const port = Number(process.env["PORT"] ?? 3000);
const server = createChatServer(limitr).listen(port, "127.0.0.1", () => {
  console.log(`chat backend on http://127.0.0.1:${port}; try:`);
  console.log(`  curl -s -XPOST localhost:${port}/chat -d '{"userId":"user_1","model":"gpt","prompt":"Hello there","maxTokens":200}'`);
});
const stop = (): void => {
  server.close();
  limitr.close();
};
process.once("SIGINT", stop).once("SIGTERM", stop);

/**
 * An AI chat backend guarded by limitr: POST /chat reserves the estimated tokens, calls the
 * model, settles the tokens really used, and answers 429 with the reason and reset time when the
 * user is out of tokens. The model is fake (deterministic) so the example runs anywhere.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
// In your app: import { createLimitrClient, type LimitrClient } from "limitr-sidecar";
import type { LimitrClient } from "../../src/client/index.js";

/** What a model call used. */
export interface Completion {
  readonly text: string;
  readonly promptTokens: number;
  readonly completionTokens: number;
}

/** ~4 characters per token, like real tokenizers on English text. */
export const countTokens = (text: string): number => Math.ceil(text.length / 4);

/** A deterministic stand-in for the model: echoes the prompt, answering at most `maxTokens`. */
export async function fakeModel(prompt: string, maxTokens: number): Promise<Completion> {
  const promptTokens = countTokens(prompt);
  const completionTokens = Math.min(maxTokens, promptTokens * 2);
  return { text: `echo: ${prompt}`.slice(0, completionTokens * 4), promptTokens, completionTokens };
}

/** Models the app offers, each metered by its own entitlement in the policy. */
const ENTITLEMENTS = new Map([
  ["gpt", "gpt_tokens"],
  ["claude", "claude_tokens"],
]);

export function createChatServer(limitr: LimitrClient, model = fakeModel): Server {
  return createServer((req, res) => {
    handle(limitr, model, req, res).catch((e: unknown) => send(res, 503, { error: "unavailable", message: (e as Error).message }));
  });
}

async function handle(limitr: LimitrClient, model: typeof fakeModel, req: IncomingMessage, res: ServerResponse): Promise<void> {
  if (req.method !== "POST" || req.url !== "/chat") return send(res, 404, { error: "not found" });
  let body: { userId?: string; model?: string; prompt?: string; maxTokens?: number };
  try {
    body = JSON.parse(await readBody(req)) as typeof body;
  } catch {
    // The caller's mistake, not an outage: 503 would tell clients to retry the same bytes.
    return send(res, 400, { error: "the body must be JSON" });
  }
  const entitlement = ENTITLEMENTS.get(body.model ?? "gpt");
  if (!body.userId || !body.prompt || !entitlement) return send(res, 400, { error: "userId, prompt and model (gpt|claude) are required" });
  const maxTokens = body.maxTokens ?? 256;

  // 1. Hold the worst case: the prompt plus the longest answer we allow.
  const estimate = countTokens(body.prompt) + maxTokens;
  const hold = await limitr.reserve(body.userId, entitlement, estimate, { attributes: { model: body.model ?? "gpt" }, ttlMs: 60_000 });
  if (!hold.allowed) {
    const resetAt = hold.nextReset;
    if (resetAt) res.setHeader("retry-after", String(Math.max(1, Math.ceil((resetAt.getTime() - Date.now()) / 1000))));
    return send(res, 429, { error: "token limit reached", reason: hold.reason, remaining: hold.remaining, limit: hold.limit, resetAt: resetAt?.toISOString() ?? null });
  }

  // 2. Call the model; 3. count what it really used (or free the hold if it failed).
  let completion: Completion;
  try {
    completion = await model(body.prompt, maxTokens);
  } catch (e) {
    await limitr.release(hold.reservationId!);
    throw e;
  }
  const used = completion.promptTokens + completion.completionTokens;
  const settled = await limitr.settle(hold.reservationId!, entitlement, used);
  send(res, 200, { text: completion.text, usage: { promptTokens: completion.promptTokens, completionTokens: completion.completionTokens, total: used }, remaining: settled.remaining });
}

function send(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body));
}

async function readBody(req: IncomingMessage): Promise<string> {
  let text = "";
  for await (const chunk of req) text += String(chunk);
  return text || "{}";
}

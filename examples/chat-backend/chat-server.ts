/**
 * An AI chat backend guarded by limitr: POST /chat reserves the estimated tokens, calls the
 * model, settles the tokens really used, and answers 429 with the reason and reset time when the
 * user is out of tokens. The model is fake (deterministic) so the example runs anywhere.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
// In your app: import { LimitrError, type LimitrClient } from "limitr-sidecar";
import { LimitrError, type LimitrClient } from "../../src/client/index.js";

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

/**
 * The Settle's retries: its tokens were already spent on the model, so it waits out a sidecar
 * restart (~1 s from spawn to serving, more on a busy node) rather than losing them. 10 retries
 * with the client's default backoff (50 ms doubled per retry, at most 1 s, with jitter) wait
 * 3.3–6.6 s in all; its idempotency key makes every retry safe. The Reserve keeps the default,
 * 3 (175–350 ms): nothing is spent yet, and a user waiting for an answer is better told 503 at once.
 */
const SETTLE_RETRIES = { retries: 10 } as const;

export function createChatServer(limitr: LimitrClient, model = fakeModel): Server {
  return createServer((req, res) => {
    handle(limitr, model, req, res).catch((e: unknown) => {
      // A request the sidecar refuses as malformed (an id too long, an amount out of range) is
      // the caller's to fix: 503 would tell it to send the same bytes again.
      if (e instanceof LimitrError && e.code === "INVALID_ARGUMENT") return send(res, 400, { error: "invalid request", message: e.message });
      send(res, 503, { error: "unavailable", message: (e as Error).message });
    });
  });
}

/** A valid POST /chat body. */
interface ChatRequest {
  readonly userId: string;
  readonly model: string;
  readonly entitlement: string;
  readonly prompt: string;
  readonly maxTokens: number;
}

/** The request, or what is wrong with it. */
function parseChat(body: unknown): ChatRequest | string {
  if (typeof body !== "object" || body === null || Array.isArray(body)) return "the body must be a JSON object";
  const { userId, model = "gpt", prompt, maxTokens = 256 } = body as Record<string, unknown>;
  if (typeof userId !== "string" || userId.trim() === "") return "userId must be a non-empty string";
  if (typeof prompt !== "string" || prompt === "") return "prompt must be a non-empty string";
  const entitlement = typeof model === "string" ? ENTITLEMENTS.get(model) : undefined;
  if (typeof model !== "string" || entitlement === undefined) return "model must be gpt or claude";
  // A string would be joined to the estimate ("1" + "abc"), a negative one would hold less than the prompt.
  if (typeof maxTokens !== "number" || !Number.isSafeInteger(maxTokens) || maxTokens < 1) return "maxTokens must be a positive integer";
  return { userId, model, entitlement, prompt, maxTokens };
}

async function handle(limitr: LimitrClient, model: typeof fakeModel, req: IncomingMessage, res: ServerResponse): Promise<void> {
  if (req.method !== "POST" || req.url !== "/chat") return send(res, 404, { error: "not found" });
  let json: unknown;
  try {
    json = JSON.parse(await readBody(req));
  } catch {
    // The caller's mistake, not an outage: 503 would tell clients to retry the same bytes.
    return send(res, 400, { error: "the body must be JSON" });
  }
  const body = parseChat(json);
  if (typeof body === "string") return send(res, 400, { error: body });
  const { entitlement, maxTokens } = body;

  // 1. Hold the worst case: the prompt plus the longest answer we allow.
  const estimate = countTokens(body.prompt) + maxTokens;
  const hold = await limitr.reserve(body.userId, entitlement, estimate, { attributes: { model: body.model }, ttlMs: 60_000 });
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
  const settled = await limitr.settle(hold.reservationId!, entitlement, used, SETTLE_RETRIES);
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

/**
 * Runs one logical call: a deadline per attempt, and retries with exponential backoff (with
 * jitter) after UNAVAILABLE, DEADLINE_EXCEEDED or a lost connection (see `isRetryable`; a
 * cancellation through `signal` is final). The caller fixes the
 * request (and so its idempotency key) once, so every attempt is the same request. A request that
 * is not idempotent (no key, and repeating it changes the outcome) is retried only when the
 * previous attempt provably never reached the server.
 */
import { cancelledError, isRetryable, neverSent, toLimitrError } from "./limitr-error.js";
import type { RetryInfo } from "./types.js";

export interface RetryPolicy {
  readonly retries: number;
  readonly initialBackoffMs: number;
  readonly maxBackoffMs: number;
  readonly onRetry: ((info: RetryInfo) => void) | undefined;
}

/** Backoff before retry `attempt` (1-based): 50–100% of min(max, initial × 2^(attempt−1)). */
export function backoffMs(policy: RetryPolicy, attempt: number): number {
  const ceiling = Math.min(policy.maxBackoffMs, policy.initialBackoffMs * 2 ** Math.min(attempt - 1, 30));
  return Math.round(ceiling * (0.5 + Math.random() / 2));
}

/** Resolves after `ms`, or rejects at once when `signal` aborts. */
export function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason as Error);
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal?.reason as Error);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

export async function callWithRetry<T>(
  method: string,
  policy: RetryPolicy,
  signal: AbortSignal | undefined,
  attempt: () => Promise<T>,
  idempotent = true,
  idempotencyKey?: string,
): Promise<T> {
  for (let n = 1; ; n++) {
    try {
      return await attempt();
    } catch (e) {
      if (signal?.aborted) throw cancelledError(signal, method, n, e, idempotencyKey);
      if (n > policy.retries || !isRetryable(e, signal) || (!idempotent && !neverSent(e))) throw toLimitrError(e, method, n, idempotencyKey);
      const delayMs = backoffMs(policy, n);
      policy.onRetry?.({ method, attempt: n, delayMs, error: e as Error });
      try {
        await sleep(delayMs, signal);
      } catch {
        // Only the signal ends the sleep early: the call was cancelled while waiting to retry.
        throw cancelledError(signal!, method, n, e, idempotencyKey);
      }
    }
  }
}

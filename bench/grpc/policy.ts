/**
 * The bench policy: one default plan with three hard limits high enough never to deny during a
 * run (so every Allow counts and the meter check after a run is exact). `requestsLimit` is what
 * the reload scenario changes each second.
 */
import { renameSync, writeFileSync } from "node:fs";

/** The hard limit every bench meter is under; the Redis baseline enforces the same number. */
export const BENCH_LIMIT = 1_000_000_000_000;

export function benchPolicyText(requestsLimit = BENCH_LIMIT): string {
  const limit = (credit: string, value: number): string =>
    `          limit: { credit: ${credit}, mode: hard, value: ${value}, resets: true, reset_sch: 'monthly:1' }\n`;
  return (
    "policy:\n" +
    "  credits:\n" +
    "    token: { label: Token, unit: token }\n" +
    "    request: { label: Request, unit: request }\n" +
    "  plans:\n" +
    "    bench:\n" +
    "      label: Bench\n" +
    "      default: true\n" +
    "      entitlements:\n" +
    "        requests:\n" + limit("request", requestsLimit) +
    "        input_tokens:\n" + limit("token", BENCH_LIMIT) +
    "        output_tokens:\n" + limit("token", BENCH_LIMIT)
  );
}

/** Replaces the policy file atomically (write + rename, as a ConfigMap update swaps it). */
export function writePolicy(path: string, requestsLimit = BENCH_LIMIT): void {
  writeFileSync(`${path}.tmp`, benchPolicyText(requestsLimit));
  renameSync(`${path}.tmp`, path);
}

/**
 * Storage written per UTC day, per organisation (combined.yaml `storage_mb`: 1GB/day hard on
 * free, 10GB soft on pro). Sizes are sent with their unit ('250MB', '1.5GB', '0.5GiB'); the
 * sidecar converts them into the meter's MB (1GB = 1000MB, 1GiB = 1073.741824MB).
 */
// In your app: import type { LimitrClient } from "limitr-sidecar";
import type { LimitrClient } from "../../src/client/index.js";

export interface UploadResult {
  readonly accepted: boolean;
  readonly reason: string;
  /** MB written today, after this upload when accepted. */
  readonly usedMb: number | undefined;
  readonly limitMb: number | undefined;
  /** When today's quota starts over (00:00 UTC). */
  readonly resetsAt: Date | undefined;
}

/** Asks for room for an upload of `size` (e.g. '250MB') by `user` of `org`, and counts it. */
export async function upload(limitr: LimitrClient, org: string, user: string, size: string): Promise<UploadResult> {
  const d = await limitr.allow(user, "storage_mb", size, { customer: { refs: [org] }, attributes: { kind: "upload" } });
  return { accepted: d.allowed, reason: d.reason, usedMb: d.value, limitMb: d.limit, resetsAt: d.nextReset };
}

/** `986.870912` → `986.9 MB`, `1500` → `1.50 GB`. */
export function formatMb(mb: number): string {
  return mb >= 1000 ? `${(mb / 1000).toFixed(2)} GB` : `${mb.toFixed(1)} MB`;
}

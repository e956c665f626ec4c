import { createHash } from "node:crypto";

/** Hex digits kept of the sha256: 64 bits, enough to tell policy revisions apart, short enough to read. */
export const VERSION_HEX_DIGITS = 16;

/**
 * The version of a policy document: the first 16 hex digits of the sha256 of its bytes. Hashing
 * the bytes (not the parsed document) means the same file always has the same version on every
 * pod, and an operator can compute it with `sha256sum policy.yaml | cut -c1-16`.
 */
export function contentVersion(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex").slice(0, VERSION_HEX_DIGITS);
}

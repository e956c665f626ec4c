/**
 * Opaque page tokens. A token is the position to continue after, tagged with what it pages
 * through so a token of one list is refused by another (INVALID_ARGUMENT, not a wrong page).
 */
import { invalidArgument } from "../errors/index.js";

/** Encodes `position` of list `kind` as an opaque token. */
export function encodePageToken(kind: string, position: string): string {
  return Buffer.from(`${kind}:${position}`, "utf8").toString("base64url");
}

/** Decodes a token made by `encodePageToken`; empty = the start (undefined). */
export function decodePageToken(kind: string, token: string, field = "page_token"): string | undefined {
  if (token === "") return undefined;
  const text = Buffer.from(token, "base64url").toString("utf8");
  if (!text.startsWith(`${kind}:`) || encodePageToken(kind, text.slice(kind.length + 1)) !== token) {
    throw invalidArgument(field, "is not a token returned by this list");
  }
  return text.slice(kind.length + 1);
}

/** page_size → a limit: 0 = `dflt`, capped at `max`, negative refused. */
export function pageSize(size: number, dflt: number, max: number, field = "page_size"): number {
  if (size < 0) throw invalidArgument(field, "must not be negative");
  return size === 0 ? dflt : Math.min(size, max);
}

/**
 * Policy file bytes → text. `check-policy` and the running sidecar both decode through here, so
 * a file that one of them accepts the other accepts too.
 */
import type { PolicyIssue } from "./types.js";

// fatal: a byte that is not UTF-8 would otherwise become U+FFFD and a plan named "p\uFFFD"
// would validate; ignoreBOM false (the default) drops a leading BOM, which editors on Windows
// write and which is no part of the document.
const utf8 = new TextDecoder("utf-8", { fatal: true });

/** The result of decoding: the text, or the one issue that says why the bytes are no text. */
export type DecodeResult = { readonly ok: true; readonly text: string } | { readonly ok: false; readonly issues: readonly PolicyIssue[] };

/** Decodes UTF-8 (a leading BOM dropped); bytes that are not UTF-8 are an issue, never U+FFFD. */
export function decodePolicyBytes(bytes: Uint8Array): DecodeResult {
  try {
    return { ok: true, text: utf8.decode(bytes) };
  } catch {
    return { ok: false, issues: [{ kind: "error", path: "policy", message: "the file is not valid UTF-8" }] };
  }
}

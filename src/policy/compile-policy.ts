/**
 * Document → validated, compiled policy. CONTRACT STUB — the policy work replaces these bodies.
 */
import type { CompileResult, PolicyIssue } from "./types.js";

/** The result of parsing policy text: a plain document, or the syntax errors. */
export type ParseResult = { readonly ok: true; readonly doc: unknown } | { readonly ok: false; readonly issues: readonly PolicyIssue[] };

/** Parses YAML or JSON text (`auto`: JSON when it starts with `{`). */
export function parsePolicyText(text: string, format: "yaml" | "json" | "auto" = "auto"): ParseResult {
  void text;
  void format;
  return { ok: false, issues: [{ kind: "error", path: "policy", message: "not implemented" }] };
}

/** Validates a parsed document and compiles it; every error is listed, unknown fields are warnings. */
export function compilePolicy(doc: unknown, options: { readonly version: string }): CompileResult {
  void doc;
  void options;
  return { ok: false, issues: [{ kind: "error", path: "policy", message: "not implemented" }] };
}

/** Parse + compile in one step. */
export function loadPolicy(text: string, options: { readonly version: string; readonly format?: "yaml" | "json" | "auto" }): CompileResult {
  const parsed = parsePolicyText(text, options.format ?? "auto");
  if (!parsed.ok) return { ok: false, issues: parsed.issues };
  return compilePolicy(parsed.doc, options);
}

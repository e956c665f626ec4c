/**
 * Policy text → a plain document. YAML (1.2 core schema, so `yes` stays a string) or JSON;
 * syntax errors become issues that say where (line and column).
 */
import { parseDocument } from "yaml";
import type { PolicyIssue } from "./types.js";

/** The result of parsing policy text: a plain document, or the syntax errors. */
export type ParseResult = { readonly ok: true; readonly doc: unknown } | { readonly ok: false; readonly issues: readonly PolicyIssue[] };

/** Parses YAML or JSON text (`auto`: JSON when it starts with `{`). */
export function parsePolicyText(text: string, format: "yaml" | "json" | "auto" = "auto"): ParseResult {
  const json = format === "json" || (format === "auto" && text.trimStart().startsWith("{"));
  return json ? parseJson(text) : parseYaml(text);
}

function parseYaml(text: string): ParseResult {
  // uniqueKeys (the default) turns a plan or credit defined twice into an error, not a silent override.
  const doc = parseDocument(text, { prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    return {
      ok: false,
      issues: doc.errors.map((e) => {
        const pos = e.linePos?.[0];
        const where = pos ? ` at line ${pos.line}, column ${pos.col}` : "";
        return { kind: "error", path: "policy", message: `YAML syntax error${where}: ${firstLine(e.message)}` };
      }),
    };
  }
  return { ok: true, doc: doc.toJS({ maxAliasCount: 100 }) };
}

function parseJson(text: string): ParseResult {
  try {
    return { ok: true, doc: JSON.parse(text) as unknown };
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    const position = /position (\d+)/.exec(message)?.[1];
    let where = "";
    if (position !== undefined) {
      const before = text.slice(0, Number(position));
      const line = before.split("\n").length;
      const col = Number(position) - before.lastIndexOf("\n");
      where = ` at line ${line}, column ${col}`;
    }
    return { ok: false, issues: [{ kind: "error", path: "policy", message: `JSON syntax error${where}: ${firstLine(message.replace(/ in JSON at position \d+.*$/, ""))}` }] };
  }
}

function firstLine(message: string): string {
  return (message.split("\n")[0] ?? message).trim();
}

/**
 * Policy text → a plain document. YAML (1.2 core schema, so `yes` stays a string) or JSON;
 * syntax errors become issues that say where (line and column).
 */
import { isAlias, isMap, isScalar, isSeq, parseDocument, type Document, type Node } from "yaml";
import { jsonDuplicateKey, jsonErrorOffset, lineColumn } from "./json-error-offset.js";
import { joinPath } from "./policy-issues.js";
import type { PolicyIssue } from "./types.js";

/**
 * The result of parsing policy text: a plain document, or the syntax errors. `planOrder` lists
 * the plan names in document order when the parser can tell it: the document's objects list
 * integer-like keys ("2") first, and "the first default wins" means first in the text.
 */
export type ParseResult =
  | { readonly ok: true; readonly doc: unknown; readonly planOrder?: readonly string[] | undefined }
  | { readonly ok: false; readonly issues: readonly PolicyIssue[] };

/** Parses YAML or JSON text (`auto`: JSON when it starts with `{`). */
export function parsePolicyText(source: string, format: "yaml" | "json" | "auto" = "auto"): ParseResult {
  // A BOM is no part of the document; JSON.parse would call it an unexpected token.
  const text = source.startsWith("\uFEFF") ? source.slice(1) : source;
  const json = format === "json" || (format === "auto" && text.trimStart().startsWith("{"));
  return json ? parseJson(text) : parseYaml(text);
}

function parseYaml(text: string): ParseResult {
  // uniqueKeys (the default) turns a plan or credit defined twice into an error, not a silent
  // override. merge: YAML 1.2 dropped `<<: *anchor`, but policies use it to share entitlements
  // between plans; without it `<<` became an entitlement and the shared ones were lost. Merged
  // keys are no duplicates: a key written in the mapping itself overrides a merged one.
  let doc: Document;
  try {
    doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true, intAsBigInt: true, merge: true });
  } catch (e) {
    // The parser recurses per nesting level: thousands of `[` overflow the stack. That is the
    // document's fault, so it is a rejection, not a crash of check-policy or the compiler.
    return { ok: false, issues: [{ kind: "error", path: "policy", message: `YAML error: ${e instanceof RangeError ? "the document nests too deeply to read" : firstLine(e instanceof Error ? e.message : String(e))}` }] };
  }
  if (doc.errors.length > 0) {
    return {
      ok: false,
      issues: doc.errors.map((e) => {
        const pos = e.linePos?.[0];
        const where = pos ? ` at line ${pos.line}, column ${pos.col}` : "";
        return { kind: "error", path: "policy", message: `YAML syntax error${where}: ${firstLine(e.message).replace(/ at line \d+, column \d+:?$/, "")}` };
      }),
    };
  }
  try {
    // The alias cap stops a "billion laughs" document from expanding into gigabytes.
    return { ok: true, doc: doc.toJS({ maxAliasCount: 100, reviver: exactIntegers }), planOrder: planOrder(doc) };
  } catch (e) {
    return { ok: false, issues: [{ kind: "error", path: "policy", message: `YAML error: ${firstLine(e instanceof Error ? e.message : String(e))}` }] };
  }
}

function parseJson(text: string): ParseResult {
  try {
    const doc = JSON.parse(text) as unknown;
    const duplicate = jsonDuplicateKey(text);
    if (duplicate === undefined) return exactJson(text) ?? { ok: true, doc };
    const { line, column } = lineColumn(text, duplicate.offset);
    const key = duplicate.path.at(-1) ?? "";
    return {
      ok: false,
      issues: [{ kind: "error", path: joinPath("", ...duplicate.path), message: `${JSON.stringify(key)} is given twice in the same object (again at line ${line}, column ${column}); keep one` }],
    };
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    const offset = jsonErrorOffset(text);
    let where = "";
    if (offset !== undefined) {
      const { line, column } = lineColumn(text, offset);
      where = ` at line ${line}, column ${column}`;
    }
    // V8's message quotes a snippet of the text; the position is more useful, keep the gist.
    const gist = firstLine(message).replace(/, ".*$/, "").replace(/ in JSON at position \d+.*$/, "");
    return { ok: false, issues: [{ kind: "error", path: "policy", message: `JSON syntax error${where}: ${gist}` }] };
  }
}

/**
 * Valid JSON text read again with integers exact: JSON.parse rounds those past 2^53, where the
 * same document in YAML keeps them. JSON is YAML 1.2, so the YAML parser's JSON schema reads it
 * to the same values with integers as bigints. JSON.parse has already judged the syntax and the
 * scan the duplicate keys, so their messages stand; undefined only when the YAML parser cannot
 * (nesting too deep for its recursion), and then JSON.parse's document is used.
 */
function exactJson(text: string): ParseResult | undefined {
  try {
    const doc = parseDocument(text, { schema: "json", uniqueKeys: true, intAsBigInt: true });
    return doc.errors.length === 0 ? { ok: true, doc: doc.toJS({ reviver: exactIntegers }), planOrder: planOrder(doc) } : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The keys of `policy.plans` in document order, merged ones (`<<: *other_plans`) where the merge
 * puts them, each once. Undefined when the document does not say it plainly (a collection as a
 * key, `policy` itself merged in); the compiler then takes the object's order.
 */
function planOrder(doc: Document): readonly string[] | undefined {
  const policy = doc.get("policy", true);
  const plans = isMap(policy) ? policy.get("plans", true) : undefined;
  if (!isMap(plans)) return undefined;
  const names = new Set<string>();
  const collect = (node: unknown): boolean => {
    const map = isAlias(node) ? node.resolve(doc) : node;
    if (!isMap(map)) return false;
    for (const { key, value } of map.items) {
      if (!isScalar(key)) return false;
      if (typeof key.value !== "symbol") {
        // The key the plain object gets (yaml's own rule): null is "", the rest their text.
        names.add(key.value === null ? "" : String(key.value as string | number | bigint | boolean));
        continue;
      }
      // A merge key: its mappings' keys, in the order the merge inserts them.
      const sources: readonly unknown[] = isSeq(value) ? value.items : [value as Node];
      if (!sources.every(collect)) return false;
    }
    return true;
  };
  return collect(plans) ? [...names] : undefined;
}

/**
 * Integers are read as bigints so that none is rounded silently: safe ones become numbers again,
 * larger ones become their exact decimal text, which quantity fields (`value`, `minimum`…) parse
 * exactly and other fields reject with a clear message.
 */
function exactIntegers(_key: unknown, value: unknown): unknown {
  if (typeof value !== "bigint") return value;
  const n = Number(value);
  return Number.isSafeInteger(n) ? n : value.toString();
}

function firstLine(message: string): string {
  return (message.split("\n")[0] ?? message).trim();
}

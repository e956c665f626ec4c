import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { loadPolicy, parsePolicyText } from "../../src/policy/compile-policy.js";
import { jsonDuplicateKey, jsonErrorOffset } from "../../src/policy/json-error-offset.js";

const YAML_TEXT = `policy:
  credits:
    token: { unit: token }
  plans:
    free:
      default: true
      entitlements:
        chat: { limit: { credit: token, value: 100 } }
`;
const JSON_TEXT = JSON.stringify({
  policy: { credits: { token: { unit: "token" } }, plans: { free: { default: true, entitlements: { chat: { limit: { credit: "token", value: 100 } } } } } },
});

describe("parsePolicyText", () => {
  it("reads YAML and JSON into the same document", () => {
    const y = parsePolicyText(YAML_TEXT, "yaml");
    const j = parsePolicyText(JSON_TEXT, "json");
    expect(y).toEqual(j);
    expect(parsePolicyText(JSON_TEXT)).toEqual(j);
    expect(parsePolicyText(YAML_TEXT)).toEqual(y);
  });

  it("uses the YAML 1.2 core schema: `yes` is text, so it cannot silently become true", () => {
    expect(parsePolicyText("a: yes\nb: true\n")).toEqual({ ok: true, doc: { a: "yes", b: true } });
  });

  it("keeps integers beyond 2^53 exact instead of rounding them", () => {
    expect(parsePolicyText("a: 12345678901234567890\nb: 42\nc: 1.5\n")).toEqual({ ok: true, doc: { a: "12345678901234567890", b: 42, c: 1.5 } });
    const r = loadPolicy("policy: { credits: { t: {} }, plans: { p: { entitlements: { e: { limit: { credit: t, value: 9007199254740993 } } } } } }", { version: "v" });
    expect(r.ok && r.policy.plans.get("p")?.entitlements.get("e")?.limit?.value).toBe(9_007_199_254_740_993n * 1_000_000_000n);
  });

  it("keeps integers beyond 2^53 exact in JSON too, as the same document in YAML", () => {
    const text = '{"policy": {"credits": {"t": {}}, "plans": {"p": {"entitlements": {"e": {"limit": {"credit": "t", "value": 9007199254740993, "minimum": -12345678901234567890}}}}}}}';
    expect(parsePolicyText(text, "json")).toEqual(parsePolicyText(text, "yaml"));
    const r = loadPolicy(text, { version: "v", format: "json" });
    const limit = r.ok ? r.policy.plans.get("p")?.entitlements.get("e")?.limit : undefined;
    expect(limit?.value).toBe(9_007_199_254_740_993n * 1_000_000_000n);
    expect(limit?.minimum).toBe(-12_345_678_901_234_567_890n * 1_000_000_000n);
  });

  it("reads every JSON text to JSON.parse's values, integers past 2^53 exact as their text", () => {
    fc.assert(
      fc.property(fc.jsonValue({ stringUnit: "binary" }), fc.integer({ min: 0, max: 2 }), (value, indent) => {
        const text = JSON.stringify({ v: value }, null, indent);
        const r = parsePolicyText(text, "json");
        expect(r.ok).toBe(true);
        if (r.ok) expect(roundUnsafeIntegers(r.doc)).toEqual(JSON.parse(text));
      }),
    );
  });

  it("reports YAML syntax errors with line and column", () => {
    const r = parsePolicyText("policy:\n  plans:\n    free: [1, 2\n");
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.issues.length).toBeGreaterThan(0);
      expect(r.issues[0]).toMatchObject({ kind: "error", path: "policy" });
      expect(r.issues[0]?.message).toMatch(/^YAML syntax error at line \d+, column \d+: /);
    }
  });

  it("rejects a plan defined twice instead of letting the second silently win", () => {
    const r = parsePolicyText("policy:\n  plans:\n    free: {}\n    free: {}\n");
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.issues[0]?.message).toMatch(/^YAML syntax error at line 4, column 5: Map keys must be unique/);
  });

  it("rejects a JSON plan defined twice too, naming it, where JSON.parse would keep the last", () => {
    const r = parsePolicyText('{"policy": {"plans": {\n  "pro": {"entitlements": {"x": {}}},\n  "pro": {}\n}}}', "json");
    expect(r).toEqual({
      ok: false,
      issues: [{ kind: "error", path: "policy.plans.pro", message: '"pro" is given twice in the same object (again at line 3, column 3); keep one' }],
    });
  });

  it("reports JSON syntax errors with line and column", () => {
    const r = parsePolicyText('{\n  "policy": {\n    "plans": }\n}', "json");
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.issues).toHaveLength(1);
      expect(r.issues[0]?.message).toMatch(/^JSON syntax error at line 3, column 14: /);
    }
  });
});

/** JSON.parse's view of a parsed document: integer text past 2^53 rounded to the nearest double. */
function roundUnsafeIntegers(doc: unknown): unknown {
  if (typeof doc === "string" && /^-?\d{16,}$/.test(doc) && !Number.isSafeInteger(Number(doc))) return Number(doc);
  if (Array.isArray(doc)) return doc.map(roundUnsafeIntegers);
  if (typeof doc === "object" && doc !== null) return Object.fromEntries(Object.entries(doc).map(([k, v]) => [k, roundUnsafeIntegers(v)]));
  return doc;
}

describe("loadPolicy", () => {
  it("loads YAML and JSON to the same compiled policy", () => {
    const y = loadPolicy(YAML_TEXT, { version: "v1" });
    const j = loadPolicy(JSON_TEXT, { version: "v1" });
    expect(y.ok && j.ok).toBe(true);
    expect(y).toEqual(j);
  });

  it("passes syntax errors through as issues", () => {
    const r = loadPolicy("policy: [", { version: "v1", format: "yaml" });
    expect(r.ok).toBe(false);
  });
});

describe("jsonErrorOffset", () => {
  it.each([
    ['{"a": 1,}', 8],
    ['{"a": }', 6],
    ['{"a": 1} x', 9],
    ['{"a": tru}', 9],
    ['{"a": "\\x"}', 8],
    ['{"a": "\\u12G4"}', 11],
    ['{"a": 01}', 7],
    ['[1, 2', 5],
    ["", 0],
  ] as const)("%j fails at %d", (text, offset) => {
    expect(jsonErrorOffset(text)).toBe(offset);
  });

  it("accepts every valid JSON text", () => {
    fc.assert(
      fc.property(fc.jsonValue(), fc.integer({ min: 0, max: 2 }), (value, indent) => {
        expect(jsonErrorOffset(JSON.stringify(value, null, indent))).toBeUndefined();
      }),
    );
  });

  it("finds an error in every text JSON.parse rejects", () => {
    fc.assert(
      fc.property(fc.jsonValue(), fc.nat(), (value, cut) => {
        const text = JSON.stringify(value);
        const broken = text.slice(0, cut % (text.length + 1)) + "}";
        let valid = true;
        try {
          JSON.parse(broken);
        } catch {
          valid = false;
        }
        expect(jsonErrorOffset(broken) === undefined).toBe(valid);
      }),
    );
  });
});

describe("jsonDuplicateKey", () => {
  it.each([
    ['{"a": 1, "b": {"a": 2}, "c": [{"a": 1}, {"a": 2}]}', undefined],
    ['{"a": 1, "a": 2}', { path: ["a"], offset: 9 }],
    ['{"x": [{}, {"k": 1, "k": 2}]}', { path: ["x", "1", "k"], offset: 20 }],
    ['{"\\u0061": 1, "a": 2}', { path: ["a"], offset: 14 }],
  ] as const)("%j → %j", (text, expected) => {
    expect(jsonDuplicateKey(text)).toEqual(expected);
  });

  it("finds none in what JSON.stringify writes", () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        expect(jsonDuplicateKey(JSON.stringify(value))).toBeUndefined();
      }),
    );
  });
});

describe("hostile YAML", () => {
  it("refuses an alias bomb instead of expanding it", () => {
    const lines = ["a: &a [x, x, x, x, x, x, x, x, x, x]"];
    for (let i = 1; i < 10; i++) lines.push(`${String.fromCharCode(97 + i)}: &${String.fromCharCode(97 + i)} [${Array(10).fill(`*${String.fromCharCode(96 + i)}`).join(", ")}]`);
    const r = parsePolicyText(lines.join("\n"));
    expect(r.ok).toBe(false);
  });

  it("rejects a document nested too deeply to parse, rather than throwing", () => {
    const deep = `policy:\n  plans:\n    p:\n      x: ${"[".repeat(20_000)}${"]".repeat(20_000)}\n`;
    expect(parsePolicyText(deep)).toEqual({ ok: false, issues: [{ kind: "error", path: "policy", message: "YAML error: the document nests too deeply to read" }] });
    // As JSON it is read by JSON.parse, whose depth is not limited the same way.
    expect(loadPolicy(`{"policy": {"plans": {"p": {"x": ${"[".repeat(20_000)}${"]".repeat(20_000)}}}}}`, { version: "v" }).ok).toBe(true);
  });
});

describe("YAML merge keys", () => {
  const entitlements = (text: string): Record<string, unknown> | undefined => {
    const r = loadPolicy(text, { version: "v" });
    if (!r.ok) throw new Error(JSON.stringify(r.issues));
    expect(r.warnings).toEqual([]);
    const pro = r.policy.plans.get("pro");
    return pro && Object.fromEntries([...pro.entitlements].map(([name, e]) => [name, e.limit === undefined ? "flag" : Number(e.limit.value / 1_000_000_000n)]));
  };

  it("merges an anchored mapping; a key written in the mapping overrides the merged one, before or after `<<`", () => {
    const plans = (pro: string): string => `policy:
  credits: { token: {} }
  plans:
    free:
      default: true
      entitlements: &free
        chat: { limit: { credit: token, value: 100 } }
        export: {}
    pro:
      entitlements:
${pro}`;
    expect(entitlements(plans("        <<: *free\n        chat: { limit: { credit: token, value: 10000 } }\n"))).toEqual({ chat: 10000, export: "flag" });
    expect(entitlements(plans("        chat: { limit: { credit: token, value: 10000 } }\n        <<: *free\n"))).toEqual({ chat: 10000, export: "flag" });
  });

  it("merges a list of mappings, the earlier one winning", () => {
    const text = `policy:
  credits: { token: {} }
  plans:
    a: { entitlements: &a { chat: { limit: { credit: token, value: 1 } } } }
    b: { entitlements: &b { chat: { limit: { credit: token, value: 2 } }, export: {} } }
    pro:
      entitlements:
        <<: [*a, *b]
`;
    expect(entitlements(text)).toEqual({ chat: 1, export: "flag" });
  });

  it("still rejects a key written twice in the same mapping, and a quoted \"<<\" is an ordinary key", () => {
    const twice = parsePolicyText("base: &b { x: 1 }\nm:\n  <<: *b\n  y: 1\n  y: 2\n");
    expect(twice.ok).toBe(false);
    if (!twice.ok) expect(twice.issues[0]?.message).toMatch(/Map keys must be unique/);
    expect(parsePolicyText('base: &b { x: 1 }\nm: { "<<": *b }\n')).toEqual({ ok: true, doc: { base: { x: 1 }, m: { "<<": { x: 1 } } } });
  });

  it("refuses a merge of something that is not a mapping", () => {
    const r = parsePolicyText("s: &s [1]\nm: { <<: *s }\n");
    expect(r.ok).toBe(false);
  });
});

import { describe, expect, it } from "vitest";
import { decodePolicyBytes, loadPolicy } from "../../src/policy/index.js";

const JSON_POLICY = '{"policy": {"plans": {"p": {"default": true}}}}';
const BOM = [0xef, 0xbb, 0xbf];

describe("decodePolicyBytes", () => {
  it("drops a leading BOM, so a JSON policy saved by a Windows editor loads", () => {
    const decoded = decodePolicyBytes(new Uint8Array([...BOM, ...Buffer.from(JSON_POLICY)]));
    expect(decoded).toEqual({ ok: true, text: JSON_POLICY });
    expect(decoded.ok && loadPolicy(decoded.text, { version: "v" }).ok).toBe(true);
  });

  it("refuses bytes that are not UTF-8 instead of naming a plan with U+FFFD", () => {
    const latin1 = Buffer.from("policy:\n  plans:\n    p\xff: { default: true }\n", "latin1");
    expect(decodePolicyBytes(latin1)).toEqual({ ok: false, issues: [{ kind: "error", path: "policy", message: "the file is not valid UTF-8" }] });
  });

  it("keeps every other character, a BOM past the start included", () => {
    const text = "policy: { plans: { caf\u00e9: { label: \"\uFEFF\u{1F600}\" } } }";
    expect(decodePolicyBytes(Buffer.from(text))).toEqual({ ok: true, text });
  });
});

describe("a BOM in policy text", () => {
  it("is no JSON syntax error when the text reaches loadPolicy with it", () => {
    const r = loadPolicy(`\uFEFF${JSON_POLICY}`, { version: "v" });
    expect(r.ok && r.policy.defaultPlan).toBe("p");
  });
});

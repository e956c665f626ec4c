/**
 * Renders a kustomization with `kubectl kustomize` (kustomize v5 built into kubectl) and parses
 * the result. kubectl comes with the machine image here; Debian's own kubernetes-client (1.20,
 * kustomize v2) is too old for the `patches` field, so there is no fallback renderer: a missing
 * kubectl fails loudly rather than skipping the checks.
 */
import { execFileSync } from "node:child_process";
import { parseAllDocuments } from "yaml";

export interface K8sObject {
  readonly apiVersion: string;
  readonly kind: string;
  readonly metadata: { readonly name: string; readonly [key: string]: unknown };
  readonly [key: string]: unknown;
}

export function renderKustomize(dir: string): K8sObject[] {
  let out: string;
  try {
    out = execFileSync("kubectl", ["kustomize", dir], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  } catch (err) {
    const e = err as { code?: string; stderr?: string };
    if (e.code === "ENOENT") throw new Error("kubectl is required to render deploy/ (kubectl kustomize); it is not on PATH");
    throw new Error(`kubectl kustomize ${dir} failed: ${e.stderr ?? String(err)}`);
  }
  return parseAllDocuments(out).map((doc) => {
    if (doc.errors.length > 0) throw new Error(`rendered YAML does not parse: ${doc.errors.join("; ")}`);
    return doc.toJS() as K8sObject;
  });
}

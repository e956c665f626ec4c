/**
 * Policy documents and the compile function for the watcher tests. The documents are real SPEC §2
 * policies, so they mean the same to the real compiler.
 */
import { parse } from "yaml";
import type { CompileResult, CompiledPolicy } from "../../src/policy/index.js";

/** A valid policy whose `chat` limit is `limit` tokens; each limit value is a distinct document. */
export function validPolicy(limit: number): string {
  return `policy:
  credits:
    token:
      label: Token
  plans:
    free:
      label: Free
      default: true
      entitlements:
        chat:
          limit:
            credit: token
            value: ${limit}
`;
}

/** An invalid policy: the limit names a credit that does not exist (a distinct document per `n`). */
export function invalidPolicy(n: number): string {
  return `policy:
  credits:
    token:
      label: Token
  plans:
    free:
      label: Free
      default: true
      entitlements:
        chat:
          limit:
            credit: tokenz
            value: ${n}
`;
}

/** The path the compiler must name for `invalidPolicy`. */
export const INVALID_PATH = "policy.plans.free.entitlements.chat.limit.credit";

/**
 * STAND-IN until the real `loadPolicy` lands: checks only what these fixtures vary (YAML syntax and
 * that each limit's credit exists) and returns a skeletal policy stamped with `version`.
 */
export function compile(text: string, version: string): CompileResult {
  let doc: unknown;
  try {
    doc = parse(text);
  } catch (err) {
    return { ok: false, issues: [{ kind: "error", path: "policy", message: String(err) }] };
  }
  const policy = (doc as { policy?: { credits?: Record<string, unknown>; plans?: Record<string, { entitlements?: Record<string, { limit?: { credit?: string } }> }> } } | null)?.policy;
  if (!policy) return { ok: false, issues: [{ kind: "error", path: "policy", message: "is required" }] };
  const credits = policy.credits ?? {};
  const issues = [];
  for (const [plan, p] of Object.entries(policy.plans ?? {})) {
    for (const [ent, e] of Object.entries(p.entitlements ?? {})) {
      const credit = e.limit?.credit;
      if (credit !== undefined && !(credit in credits)) {
        issues.push({ kind: "error" as const, path: `policy.plans.${plan}.entitlements.${ent}.limit.credit`, message: `credit "${credit}" does not exist` });
      }
    }
  }
  if (issues.length > 0) return { ok: false, issues };
  const compiled: CompiledPolicy = { version, credits: new Map(), plans: new Map(), defaultPlan: undefined, entitlementNames: new Set() };
  return { ok: true, policy: compiled, warnings: [] };
}

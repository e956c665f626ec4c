/**
 * Policy documents and the compile function for the watcher tests. The documents are real SPEC §2
 * policies, so they mean the same to the real compiler.
 */
import { loadPolicy, type CompileResult } from "../../src/policy/index.js";

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

/** The real compiler, exactly as the CLI wires it. */
export function compile(text: string, version: string): CompileResult {
  return loadPolicy(text, { version });
}

/**
 * The `policy-applied` / `policy-rejected` events, built from what the watcher reports. They go
 * into the same durable log as meter events, so billing and alerting see pricing changes in
 * order with the decisions they affect.
 */
import type { EngineEvent } from "../engine/index.js";
import type { CompiledPolicy, PolicyIssue } from "../policy/index.js";

/** A `policy-applied` event; `removedPlans` names plans whose customers now fall back. */
export function policyAppliedEvent(
  previous: CompiledPolicy | undefined,
  next: CompiledPolicy,
  source: string,
  time: number,
): EngineEvent {
  const removedPlans = previous ? [...previous.plans.keys()].filter((name) => !next.plans.has(name)) : [];
  return { type: "policy-applied", time, policyVersion: next.version, source, removedPlans };
}

/** A `policy-rejected` event listing every error as `path: message`. */
export function policyRejectedEvent(version: string, issues: readonly PolicyIssue[], source: string, time: number): EngineEvent {
  return {
    type: "policy-rejected",
    time,
    policyVersion: version,
    source,
    errors: issues.filter((i) => i.kind === "error").map(formatIssue),
  };
}

/** `path: message`, the one way issues are printed (logs, check-policy, events, status). */
export function formatIssue(issue: PolicyIssue): string {
  return `${issue.path}: ${issue.message}`;
}

/**
 * Seats of an organisation with limitr (combined.yaml: `seats` is scoped to the org, 3 on free,
 * 10 on pro). The app's own database says who is a member; limitr counts the seats and says no
 * when the org's plan is full. Inviting is Allow +1 on the member (whose refs lead to the org),
 * removing is Allow −1 (decreases are always allowed).
 */
// In your app: import type { LimitrClient } from "limitr-sidecar";
import type { LimitrClient } from "../../src/client/index.js";

export interface InviteResult {
  readonly invited: boolean;
  readonly reason: string;
  readonly seatsUsed: number | undefined;
  readonly seatsLimit: number | undefined;
}

export function createSeats(limitr: LimitrClient) {
  /** The app's member table (a real app keeps this in its database). */
  const members = new Map<string, Set<string>>();
  const of = (org: string): Set<string> => members.get(org) ?? members.set(org, new Set()).get(org)!;

  return {
    /** Registers an organisation on a plan. */
    async createOrg(org: string, plan: string): Promise<void> {
      await limitr.upsertCustomer({ id: org, type: "org", plan });
    },
    async invite(org: string, user: string): Promise<InviteResult> {
      if (of(org).has(user)) return { invited: true, reason: "ALREADY_MEMBER", seatsUsed: undefined, seatsLimit: undefined };
      // The hint makes the user a member of the org in limitr, so the seat is taken from the org's meter.
      const d = await limitr.allow(user, "seats", 1, { customer: { type: "user", refs: [org] } });
      if (d.allowed) of(org).add(user);
      return { invited: d.allowed, reason: d.reason, seatsUsed: d.value, seatsLimit: d.limit };
    },
    async remove(org: string, user: string): Promise<number | undefined> {
      if (!of(org).delete(user)) return undefined;
      const d = await limitr.allow(user, "seats", -1);
      return d.value;
    },
    /** Upgrades (or downgrades) the org: seats already taken stay counted. */
    async changePlan(org: string, plan: string): Promise<void> {
      await limitr.setCustomerPlan(org, plan);
    },
    members: (org: string): string[] => [...of(org)],
  };
}

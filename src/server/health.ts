/**
 * `grpc.health.v1.Health` (Check and Watch) for the whole server and each limitr service. Starts
 * NOT_SERVING: the composition root flips it once the policy is loaded and the store is open,
 * and shutdown flips it back first, so probes stop routing traffic before anything closes.
 */
import { HealthImplementation } from "grpc-health-check";
import { AdminService } from "../gen/limitr/v1/admin_pb.js";
import { DecisionService } from "../gen/limitr/v1/decision_pb.js";
import type { ServiceAdder } from "./end-streams-on.js";

/** Service names reported: "" is the server as a whole (what kubelet's gRPC probe asks). */
export const HEALTH_SERVICES: readonly string[] = ["", DecisionService.typeName, AdminService.typeName];

export interface Health {
  setServing(serving: boolean): void;
  isServing(): boolean;
  /** Adds the Health service to a grpc-js server (several servers may share one status). */
  addToServer(server: ServiceAdder): void;
}

export function createHealth(): Health {
  const impl = new HealthImplementation(Object.fromEntries(HEALTH_SERVICES.map((s) => [s, "NOT_SERVING" as const])));
  let serving = false;
  return {
    setServing(next) {
      serving = next;
      for (const s of HEALTH_SERVICES) impl.setStatus(s, next ? "SERVING" : "NOT_SERVING");
    },
    isServing: () => serving,
    addToServer: (server) => impl.addToServer(server),
  };
}

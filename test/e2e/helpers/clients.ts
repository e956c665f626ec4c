/**
 * Real grpc-js clients (from the proto files via proto-loader) for a sidecar at an address.
 * Reuses the server tests' loaders so there is one way to call the API from tests.
 */
import * as grpc from "@grpc/grpc-js";
import { collect, loadClients, statusOf, unary, type Obj } from "../../server/harness.js";

export { collect, statusOf, unary, type Obj };

const ctors = loadClients();

/** Clients of every service at `address` (HOST:PORT or unix:/path); `close()` closes them all. */
export interface SidecarClients {
  readonly decision: grpc.Client;
  readonly admin: grpc.Client;
  readonly health: grpc.Client;
  close(): void;
}

export function connectClients(address: string): SidecarClients {
  const creds = grpc.credentials.createInsecure();
  const decision = new ctors.Decision(address, creds);
  const admin = new ctors.Admin(address, creds);
  const health = new ctors.Health(address, creds);
  return {
    decision,
    admin,
    health,
    close: () => {
      decision.close();
      admin.close();
      health.close();
    },
  };
}

/** `Allow` for one item: the common call in e2e tests. */
export function allowOne(c: SidecarClients, customerId: string, entitlement: string, amount: number, extra: Obj = {}): Promise<Obj> {
  return unary(c.decision, "Allow", { customer_id: customerId, items: [{ entitlement, amount }], ...extra });
}

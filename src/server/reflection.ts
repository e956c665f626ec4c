/**
 * Server reflection (v1 and v1alpha) so `grpcurl` and similar tools work without proto files.
 * The descriptors come from the repo's `proto/` directory, found relative to this module: it is
 * two levels up from both `src/server/` (tests) and `dist/server/` (the built package, whose
 * `files` include `proto`).
 */
import { readdirSync } from "node:fs";
import { dirname, join, relative, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { loadSync } from "@grpc/proto-loader";
import type { PackageDefinition } from "@grpc/proto-loader";
import { ReflectionService } from "@grpc/reflection";
import { protoPath as healthProtoPath } from "grpc-health-check";
import type { ServiceAdder } from "./end-streams-on.js";

/** The directory holding `limitr/v1/*.proto`. */
export const PROTO_DIR = fileURLToPath(new URL("../../proto", import.meta.url));

/** Every `.proto` file under `dir`, as import paths relative to it (`limitr/v1/admin.proto`). */
export function listProtoFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const entry of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, entry.name);
      if (entry.isDirectory()) walk(p);
      else if (entry.name.endsWith(".proto")) out.push(relative(dir, p).split(sep).join("/"));
    }
  };
  walk(dir);
  return out.sort();
}

/** Loads limitr.v1 and grpc.health.v1 as a proto-loader package definition. */
export function loadServedProtos(protoDir = PROTO_DIR): PackageDefinition {
  const healthRoot = dirname(dirname(dirname(healthProtoPath)));
  return loadSync([...listProtoFiles(protoDir), "health/v1/health.proto"], {
    includeDirs: [protoDir, healthRoot],
    keepCase: true,
  });
}

/** Adds reflection for the limitr services and Health to a grpc-js server. */
export function addReflection(server: ServiceAdder, protoDir = PROTO_DIR): void {
  new ReflectionService(loadServedProtos(protoDir)).addToServer(server);
}

/**
 * Small policies for end-to-end tests, written to a temp dir so each test controls its limits.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/**
 * `limited`: hard 100 units, never resets. `counter`: observe, never resets (counts anything).
 * `flag`: a feature flag. Everyone is on the default plan `basic`.
 */
export const COUNTER_POLICY = `
policy:
  credits:
    unit: { label: Unit }
  plans:
    basic:
      default: true
      entitlements:
        limited: { limit: { credit: unit, mode: hard, value: 100 } }
        counter: { limit: { credit: unit, mode: observe, value: 0 } }
        flag: {}
`;

/** A temp dir holding `policy.yaml` and an empty `data/`; `cleanup()` removes it. */
export interface TestDir {
  readonly dir: string;
  readonly policyPath: string;
  readonly dataDir: string;
  cleanup(): void;
}

export function makeTestDir(policy: string = COUNTER_POLICY): TestDir {
  const dir = mkdtempSync(join(tmpdir(), "limitr-e2e-"));
  const policyPath = join(dir, "policy.yaml");
  writeFileSync(policyPath, policy);
  return {
    dir,
    policyPath,
    dataDir: join(dir, "data"),
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

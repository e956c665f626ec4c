import { describe, expect, it } from "vitest";
import { createAltIdConflictWarner } from "../../src/cli/alt-id-conflicts.js";
import { createLogger } from "../../src/cli/logger.js";

function capture(): { logger: ReturnType<typeof createLogger>; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  return { logger: createLogger({ write: (l) => void lines.push(JSON.parse(l) as Record<string, unknown>) }), lines };
}

describe("the hint alt-id conflict warner", () => {
  it("warns once per customer and alt id, naming both and the customer that has it", () => {
    const { logger, lines } = capture();
    const warn = createAltIdConflictWarner(logger);
    for (let i = 0; i < 3; i++) warn({ customerId: "alice", altId: "sk_1", heldBy: "sk_1" });
    warn({ customerId: "alice", altId: "sk_2", heldBy: "bob" });
    warn({ customerId: "carol", altId: "sk_1", heldBy: "sk_1" });
    expect(lines.map((l) => [l.level, l.customerId, l.altId, l.heldBy])).toEqual([
      ["warn", "alice", "sk_1", "sk_1"],
      ["warn", "alice", "sk_2", "bob"],
      ["warn", "carol", "sk_1", "sk_1"],
    ]);
  });

  it("remembers a bounded number of pairs: past it, starts afresh (one more warning each)", () => {
    const { logger, lines } = capture();
    const warn = createAltIdConflictWarner(logger, 2);
    for (const alt of ["a", "b", "c", "a", "c"]) warn({ customerId: "u", altId: alt, heldBy: "v" });
    expect(lines.map((l) => l.altId)).toEqual(["a", "b", "c", "a"]);
  });
});

import { describe, expect, it } from "vitest";
import { createDataBudgetWatch } from "../../src/cli/data-budget-watch.js";

const reading = (dataBytes: number, tables: Record<string, number> = { events: dataBytes }) => ({ dataBytes, dataBytesByTable: tables });

describe("createDataBudgetWatch", () => {
  it("warns once at 80% of the budget, with the tables that hold data largest first", () => {
    const watch = createDataBudgetWatch(1000);
    expect(watch(reading(799))).toBeUndefined();
    expect(watch(reading(800, { meters: 100, events: 300, idempotency: 400, customers: 0 }))).toEqual({
      dataBytes: 800,
      maxDataBytes: 1000,
      percent: 80,
      tables: { idempotency: 400, events: 300, meters: 100 },
    });
    expect(Object.keys(watch(reading(0)) ?? {})).toEqual([]);
  });

  it("says it again only after the data fell below 70% and came back", () => {
    const watch = createDataBudgetWatch(1000);
    expect(watch(reading(850))).toBeDefined();
    expect(watch(reading(990))).toBeUndefined();
    expect(watch(reading(750))).toBeUndefined(); // pruned, but not below 70%
    expect(watch(reading(820))).toBeUndefined();
    expect(watch(reading(690))).toBeUndefined();
    expect(watch(reading(810))?.percent).toBe(81);
  });
});

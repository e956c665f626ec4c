/**
 * Says when the stored data nears `--max-data-bytes`, before writes start to be refused: once
 * when it reaches 80% of the budget, and again only after it fell below 70% (pruning) and came
 * back, so a store that hovers at the mark does not repeat it every maintenance round.
 */
export const WARN_SHARE = 0.8;
export const REARM_SHARE = 0.7;

/** What the watch reads from the store's stats. */
export interface DataReading {
  readonly dataBytes: number;
  readonly dataBytesByTable: Readonly<Record<string, number>>;
}

export interface BudgetWarning {
  readonly dataBytes: number;
  readonly maxDataBytes: number;
  /** Share of the budget in use, in percent, rounded. */
  readonly percent: number;
  /** The tables holding data, largest first, as `name` → bytes. */
  readonly tables: Readonly<Record<string, number>>;
}

/** Returns a function to call with each reading; it returns a warning when one is due. */
export function createDataBudgetWatch(maxDataBytes: number): (reading: DataReading) => BudgetWarning | undefined {
  let armed = true;
  return (reading) => {
    const share = reading.dataBytes / maxDataBytes;
    if (share < REARM_SHARE) armed = true;
    if (!armed || share < WARN_SHARE) return undefined;
    armed = false;
    const tables = Object.fromEntries(
      Object.entries(reading.dataBytesByTable)
        .filter(([, bytes]) => bytes > 0)
        .sort(([, a], [, b]) => b - a),
    );
    return { dataBytes: reading.dataBytes, maxDataBytes, percent: Math.round(share * 100), tables };
  };
}

/**
 * Units: quantities with units (`'2GB'`, `'10MiB'`, `'30s'`, `'100_000'`) converted into a
 * credit's `stof_units`. CONTRACT STUB — the policy work replaces these bodies.
 */
import type { Nanos } from "./fixed.js";
import type { CompiledCredit } from "./types.js";

/** A conversion result: the value in the target units, or a sentence saying what is wrong. */
export type Conversion = { readonly ok: true; readonly value: Nanos } | { readonly ok: false; readonly message: string };

/**
 * Converts a request amount given in `unit` (undefined or empty = already in the credit's units)
 * into the credit's units. Errors: unknown unit, a unit of another kind (MB into seconds).
 */
export function convertAmount(amount: number, unit: string | undefined, credit: CompiledCredit): Conversion {
  void amount;
  void unit;
  void credit;
  return { ok: false, message: "not implemented" };
}

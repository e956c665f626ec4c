/**
 * Validation and merging of customer fields shared by the admin API and request hints.
 * Errors name the proto field (snake_case), prefixed for hints (`customer_hint.alt_ids[1]`).
 */
import { LimitrError, invalidArgument } from "../errors/index.js";
import type { Customer, StateReader } from "./types.js";

/** What the customer checks read of the stored state. */
export type CustomerLookup = Pick<StateReader, "getCustomer" | "resolveAltId">;

/** A customer id that names no stored customer must not be another customer's alt id. */
export function checkCustomerId(state: CustomerLookup, field: string, id: string): void {
  if (state.getCustomer(id) !== undefined) return;
  const owner = state.resolveAltId(id);
  if (owner !== undefined) throw new LimitrError("ALREADY_EXISTS", `"${id}" is already an alt id of customer "${owner}"`, { field });
}

/**
 * Checks refs and alt ids of customer `id` (not blank, not the id itself) and, for the admin API
 * and imports, that no alt id is another customer's (ALREADY_EXISTS). Hints pass `takenAltIds:
 * "allowed"` and skip those themselves (`altIdHolder`): a decision must not fail over one.
 */
export function validateCustomerLists(
  state: CustomerLookup,
  prefix: string,
  id: string,
  refs: readonly string[] | undefined,
  altIds: readonly string[] | undefined,
  takenAltIds: "refused" | "allowed" = "refused",
): void {
  if (refs !== undefined) {
    for (let i = 0; i < refs.length; i++) {
      const ref = refs[i];
      if (ref === undefined || isBlank(ref)) throw invalidArgument(`${prefix}refs[${i}]`, blankMessage(ref));
      if (ref === id) throw invalidArgument(`${prefix}refs[${i}]`, `a customer cannot refer to itself ("${id}")`);
    }
  }
  if (altIds !== undefined) {
    for (let i = 0; i < altIds.length; i++) {
      const alt = altIds[i];
      const field = `${prefix}alt_ids[${i}]`;
      if (alt === undefined || isBlank(alt)) throw invalidArgument(field, blankMessage(alt));
      if (alt === id) throw invalidArgument(field, `an alt id cannot equal the customer's own id ("${id}")`);
      if (takenAltIds === "allowed") continue;
      const holder = altIdHolder(state, id, alt);
      if (holder === undefined) continue;
      throw new LimitrError(
        "ALREADY_EXISTS",
        holder.asId ? `"${alt}" is already the id of another customer` : `alt id "${alt}" already belongs to customer "${holder.id}"`,
        { field },
      );
    }
  }
}

/**
 * A type given (empty = keep the stored one, or `user`) must name one: a blank type matches no
 * scope, and would only look like one in listings.
 */
export function validateType(prefix: string, type: string | undefined): void {
  if (type !== undefined && type !== "" && isBlank(type)) throw invalidArgument(`${prefix}type`, blankMessage(type));
}

/**
 * Ids are refused when blank, as customer ids are (the transports' `requireId`): a ref to "  "
 * never reaches a customer, and an alt id "  " could never be looked up.
 */
function isBlank(value: string): boolean {
  return value.trim() === "";
}

function blankMessage(value: string | undefined): string {
  return value === undefined || value === "" ? "must not be empty" : "must not be only whitespace";
}

/** The other customer that has `alt` as its id or an alt id; undefined when it is free or `id`'s. */
export function altIdHolder(state: CustomerLookup, id: string, alt: string): { readonly id: string; readonly asId: boolean } | undefined {
  const owner = state.resolveAltId(alt);
  if (owner !== undefined) return owner === id ? undefined : { id: owner, asId: false };
  return state.getCustomer(alt) === undefined ? undefined : { id: alt, asId: true };
}

/** `base` followed by the entries of `extra` it lacks (hints add, never remove). */
export function mergeList(base: readonly string[], extra: readonly string[] | undefined): readonly string[] {
  if (extra === undefined || extra.length === 0) return base;
  let out: string[] | undefined;
  for (const e of extra) {
    if (base.includes(e) || (out !== undefined && out.includes(e))) continue;
    out ??= [...base];
    out.push(e);
  }
  return out ?? base;
}

/** `base` with `extra`'s keys set; `base` itself when nothing differs. */
export function mergeMetadata(
  base: Readonly<Record<string, string>>,
  extra: Readonly<Record<string, string>> | undefined,
): Readonly<Record<string, string>> {
  if (extra === undefined) return base;
  let changed = false;
  for (const [k, v] of Object.entries(extra)) {
    if (base[k] !== v) changed = true;
  }
  return changed ? { ...base, ...extra } : base;
}

/** The list without duplicates, first occurrence kept. */
export function dedupe(list: readonly string[] | undefined): readonly string[] {
  if (list === undefined || list.length === 0) return [];
  return [...new Set(list)];
}

/** True when two customer records differ in anything but timestamps. */
export function customerChanged(a: Customer, b: Customer): boolean {
  return (
    a.plan !== b.plan ||
    a.type !== b.type ||
    !sameList(a.refs, b.refs) ||
    !sameList(a.altIds, b.altIds) ||
    !sameMetadata(a.metadata, b.metadata)
  );
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function sameMetadata(a: Readonly<Record<string, string>>, b: Readonly<Record<string, string>>): boolean {
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  for (const k of ka) if (a[k] !== b[k]) return false;
  return true;
}

/**
 * Ids that name stored things obey one rule (at most 512 bytes of UTF-8; from 64 characters on,
 * no U+0000–U+0004), checked at request validation so that every operation refuses such an id
 * with INVALID_ARGUMENT naming the proto field, reads included, and changes nothing. (The memory
 * store these tests use does not check ids at all: the refusal is the engine's.)
 */
import { describe, expect, it } from "vitest";
import {
  allow,
  check,
  getMeters,
  idLengthProblem,
  idProblem,
  record,
  release,
  reserve,
  settle,
  upsertCustomer,
  type EngineContext,
} from "../../src/engine/index.js";
import { isLimitrError } from "../../src/errors/index.js";
import { buildPolicy, createHarness, credit, snapshot } from "./harness.js";

const policy = buildPolicy({ free: { isDefault: true, entitlements: { tokens: { limit: { credit: credit("token"), value: 10 } } } } });
const long = "c".repeat(600);
const control = `${"n".repeat(70)}\u0001x`;
const items = [{ entitlement: "tokens", amount: 1 }];

describe("an id that cannot be stored is INVALID_ARGUMENT naming its proto field, and changes nothing", () => {
  const decisions = { allow, check, record, reserve };
  const cases: [string, (ctx: EngineContext) => unknown, string][] = [];
  for (const [name, op] of Object.entries(decisions)) {
    cases.push(
      [`${name} customer_id`, (ctx) => op(ctx, { customerId: long, items }), "customer_id"],
      [`${name} customer_id with U+0001`, (ctx) => op(ctx, { customerId: control, items }), "customer_id"],
      [`${name} customer_hint.refs`, (ctx) => op(ctx, { customerId: "u", items, hint: { refs: ["team", long] } }), "customer_hint.refs[1]"],
      [`${name} customer_hint.alt_ids`, (ctx) => op(ctx, { customerId: "u", items, hint: { altIds: [control] } }), "customer_hint.alt_ids[0]"],
    );
    // Check uses no idempotency key, so it has none to refuse.
    if (op !== check) cases.push([`${name} idempotency_key`, (ctx) => op(ctx, { customerId: "u", items, idempotencyKey: long }), "idempotency_key"]);
  }
  cases.push(
    ["getMeters customer_id", (ctx) => getMeters(ctx, long, []), "customer_id"],
    ["settle reservation_id", (ctx) => settle(ctx, { reservationId: long, actual: [] }), "reservation_id"],
    ["settle idempotency_key", (ctx) => settle(ctx, { reservationId: "r1", actual: [], idempotencyKey: control }), "idempotency_key"],
    ["release reservation_id", (ctx) => release(ctx, { reservationId: long }), "reservation_id"],
    ["upsertCustomer customer_id", (ctx) => upsertCustomer(ctx, { id: long }), "customer_id"],
    ["upsertCustomer refs", (ctx) => upsertCustomer(ctx, { id: "u", refs: [control] }), "refs[0]"],
    ["upsertCustomer alt_ids", (ctx) => upsertCustomer(ctx, { id: "u", altIds: ["stripe-1", long] }), "alt_ids[1]"],
  );

  it.each(cases)("%s", (_name, run, field) => {
    const h = createHarness(policy);
    let caught: unknown;
    try {
      const out = run(h.ctx()) as { writes: never[]; events: never[] };
      void h.store.commit(out.writes, out.events);
    } catch (e) {
      caught = e;
    }
    expect(isLimitrError(caught, "INVALID_ARGUMENT"), String(caught)).toBe(true);
    expect((caught as Error).message).toMatch(new RegExp(`^${field.replace(/[[\]]/g, "\\$&")}: must (be at most 512 bytes \\(UTF-8\\)|not contain U\\+0000 to U\\+0004)`));
    expect(snapshot(h.store)).toEqual([]);
  });

  it("an id at the limit, or shorter than 64 characters with U+0000, is accepted", () => {
    const h = createHarness(policy);
    for (const id of ["é".repeat(256), "😀".repeat(128), `a\u0000b`, `${"n".repeat(62)}\u0001`]) {
      expect(h.run(allow, { customerId: id, items, idempotencyKey: id, hint: { altIds: [`alt-${id}`.slice(0, 60)] } }).result.allowed).toBe(true);
    }
  });
});

describe("the id rule counts bytes as UTF-8 does", () => {
  it.each([
    ["ascii", "a".repeat(512), "a".repeat(513)],
    ["2-byte", "é".repeat(256), "é".repeat(257)],
    ["3-byte", "€".repeat(170), "€".repeat(171)],
    ["surrogate pairs", "😀".repeat(128), "😀".repeat(129)],
    // A lone surrogate is encoded as U+FFFD, 3 bytes.
    ["lone surrogates", "\ud800".repeat(170), "\ud800".repeat(171)],
    ["a pair split at the end", `${"a".repeat(509)}\ud83d`, `${"a".repeat(510)}\ud83d`],
  ])("%s", (_name, fits, over) => {
    expect(Buffer.byteLength(fits, "utf8")).toBeLessThanOrEqual(512);
    expect(Buffer.byteLength(over, "utf8")).toBeGreaterThan(512);
    expect(idLengthProblem(fits)).toBeUndefined();
    expect(idLengthProblem(over)).toBe("must be at most 512 bytes (UTF-8)");
  });

  it("U+0000–U+0004 count from 64 characters on; U+0005 never", () => {
    expect(idProblem(`${"n".repeat(63)}\u0004`)).toMatch(/U\+0000 to U\+0004/);
    expect(idProblem(`${"n".repeat(62)}\u0004`)).toBeUndefined();
    expect(idProblem(`${"n".repeat(70)}\u0005`)).toBeUndefined();
  });
});

/**
 * Engine: the decision rules. Pure functions over a `StateReader` with an injected clock, plus
 * `createEngine`, which commits their outcomes through the `StatePort`. No I/O of its own.
 */
export type * from "./types.js";
export { DEFAULT_ENGINE_OPTIONS, type Engine, type EngineDeps, type EngineOptions } from "./engine.js";
/** What every pure operation receives (policy, state, one `now`, ids, options). */
export type { EngineContext } from "./context.js";
/** The async engine over a store: decide purely, commit, answer after the commit settles. */
export { createEngine } from "./create-engine.js";
/** Pure decisions: each returns the result plus the writes and events to commit. */
export { allow, check, record, reserve } from "./decision-ops.js";
/** Pure reservation endings: settle records the actual usage, release only frees the holds. */
export { settle, release } from "./reservation-ops.js";
/** What a meter row stores about its holds (stores and imports build it the engine's way). */
export { summarizeHolds, NO_HOLD_SUMMARY } from "./work-meter.js";
/**
 * What an id must be to name something stored; the engine refuses others in requests, and a store
 * checks each write by the same rule before it writes.
 */
export { idLengthProblem, idProblem } from "./id-rule.js";
/** Pure read of a caller's meters in their current period. */
export { getMeters } from "./get-meters.js";
/** Pure customer admin operations and the customer view (effective plan and its source). */
export { upsertCustomer, getCustomer, deleteCustomer, setCustomerPlan, listCustomers, customerView } from "./customer-ops.js";
/** Plan and scope resolution over the customer graph (also used by the event filters). */
export { findCustomer, resolvePlan, resolveScopeOwner, type ResolvedPlan } from "./customer-graph.js";
/** The rules an imported state record keeps, the admin API's and the decisions' own. */
export { validateStateRecord } from "./state-records.js";
/** What the customer checks read of the stored state (an import adds its pending records to it). */
export type { CustomerLookup } from "./customer-fields.js";

/**
 * What every pure engine operation receives: the policy read once for the operation, read access
 * to state, the operation's single `now`, an id source and the tunables. Operations return an
 * `Outcome` and never mutate state: `createEngine` commits the outcome.
 */
import type { CompiledPolicy } from "../policy/index.js";
import type { EngineOptions } from "./engine.js";
import type { ResetRuleChanges } from "./reset-rule-changes.js";
import type { EngineEvent, Outcome, ReplayedOperation, StateReader, Write } from "./types.js";

export interface EngineContext {
  readonly policy: CompiledPolicy;
  readonly state: StateReader;
  /** Epoch ms of this operation; every time-dependent rule uses exactly this value. */
  readonly now: number;
  /** Fresh unique ids (reservation ids); injected so the rules stay deterministic in tests. */
  readonly newId: () => string;
  readonly options: EngineOptions;
  /** Reset-rule changes seen across policy swaps (`createEngine` tracks them); absent = none. */
  readonly resetRuleChanges?: ResetRuleChanges;
}

/** Shared empty lists: outcomes without writes or events allocate nothing. */
export const NO_WRITES: readonly Write[] = [];
export const NO_EVENTS: readonly EngineEvent[] = [];
export const NO_ATTRIBUTES: Readonly<Record<string, string>> = Object.freeze({});

/** An outcome that changes nothing (reads, idempotent replays). */
export function readOnly<T>(result: T): Outcome<T> {
  return { result, writes: NO_WRITES, events: NO_EVENTS };
}

/** The stored answer of an idempotency key, replayed: changes nothing, and says it is a replay. */
export function replayOf<T>(result: T, operation: ReplayedOperation): Outcome<T> {
  return { result, writes: NO_WRITES, events: NO_EVENTS, replayed: operation };
}

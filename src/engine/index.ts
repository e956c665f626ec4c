/**
 * Engine: the decision rules. Pure functions over a `StateReader` with an injected clock, plus
 * `createEngine`, which commits their outcomes through the `StatePort`. No I/O of its own.
 */
export type * from "./types.js";
export { DEFAULT_ENGINE_OPTIONS, type Engine, type EngineDeps, type EngineOptions } from "./engine.js";

/**
 * Collecting policy issues. Validation never stops at the first problem: every check reports
 * into an `IssueSink` and carries on, so a rejected policy lists all of its errors at once.
 */
import type { z } from "zod";
import type { PolicyIssue } from "./types.js";

/** Collects errors and warnings in the order they are found (document order). */
export interface IssueSink {
  error(path: string, message: string): void;
  warning(path: string, message: string): void;
  readonly issues: readonly PolicyIssue[];
  hasErrors(): boolean;
}

/** A new, empty sink. */
export function createIssueSink(): IssueSink {
  const issues: PolicyIssue[] = [];
  let errors = 0;
  return {
    issues,
    error(path, message) {
      errors += 1;
      issues.push({ kind: "error", path, message });
    },
    warning(path, message) {
      issues.push({ kind: "warning", path, message });
    },
    hasErrors: () => errors > 0,
  };
}

const PLAIN_KEY = /^[A-Za-z0-9_-]+$/;

/**
 * Appends keys to a dotted path. A key that would make the path ambiguous (a dot, a space, an
 * empty name) is written in brackets: `policy.plans["pro.v2"]`.
 */
export function joinPath(base: string, ...keys: readonly (string | number)[]): string {
  let path = base;
  for (const key of keys) {
    const text = String(key);
    if (PLAIN_KEY.test(text)) path = path === "" ? text : `${path}.${text}`;
    else path = `${path}[${JSON.stringify(text)}]`;
  }
  return path;
}

/**
 * Validates one value with a zod schema whose messages are plain sentences, reporting every
 * issue under `path`. Returns the parsed value, or undefined when it is invalid.
 */
export function checkWith<T>(schema: z.ZodType<T>, value: unknown, path: string, sink: IssueSink): T | undefined {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  for (const issue of result.error.issues) {
    sink.error(joinPath(path, ...issue.path.map((k) => (typeof k === "symbol" ? String(k.description) : k))), issue.message);
  }
  return undefined;
}

/** A plain JSON/YAML mapping. */
export type RawObject = Readonly<Record<string, unknown>>;

/** True for a mapping (not null, not an array). */
export function isRawObject(value: unknown): value is RawObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** How a value is described in messages: `"text"`, `42`, `a list`, `a mapping`, `nothing`. */
export function describeValue(value: unknown): string {
  if (value === null || value === undefined) return "nothing";
  if (typeof value === "string") return JSON.stringify(value);
  if (Array.isArray(value)) return "a list";
  if (typeof value === "object") return "a mapping";
  return String(value);
}

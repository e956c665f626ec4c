/**
 * The files the subcommands read and write, named in one line when they cannot be (a mistyped
 * path, a directory, no permission), rather than as an unexpected error with a stack.
 */
import { readFileSync } from "node:fs";
import { LimitrError } from "../errors/index.js";

/** A failure of the file system itself (ENOENT, EISDIR, EACCES…), as opposed to bad content. */
function isSystemError(e: unknown): e is NodeJS.ErrnoException {
  return e instanceof Error && typeof (e as NodeJS.ErrnoException).code === "string" && typeof (e as NodeJS.ErrnoException).syscall === "string";
}

/**
 * `cannot read FILE: no such file or directory (ENOENT)`, for a file-system failure of `path`;
 * anything else is returned as it is.
 */
export function fileError(verb: "read" | "write", path: string, e: unknown): unknown {
  if (!isSystemError(e)) return e;
  // "ENOENT: no such file or directory, open '/x'" → "no such file or directory (ENOENT)"
  const reason = /^[A-Z0-9_]+: (.*?), [a-z]+\b/.exec(e.message)?.[1] ?? e.message;
  return new LimitrError("FAILED_PRECONDITION", `cannot ${verb} ${path}: ${reason} (${e.code})`, { cause: e });
}

/** The bytes of `path`, or a one-line error naming it. */
export function readInputFile(path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (e) {
    throw fileError("read", path, e);
  }
}

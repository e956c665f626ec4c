/**
 * `limitr-sidecar`: serve, check-policy, export, import. Exit codes: 0 success, 1 the command
 * failed (invalid policy, start-up failure), 2 wrong usage or configuration. Started by main.ts.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { isLimitrError, LimitrError } from "../errors/index.js";
import type { StateRecord } from "../engine/index.js";
import { decodePolicyBytes, loadPolicy, summarizePolicy } from "../policy/index.js";
import { checkStateRecords, createLmdbStore, DATA_FILE, withoutStoreAdvice, type LmdbStore } from "../store/index.js";
import { contentVersion } from "../watch/index.js";
import { ConfigError, parseServeConfig, serveOptionsHelp, type ServeConfig } from "./config.js";
import { readInputFile } from "./input-files.js";
import { createLogger, type Logger } from "./logger.js";
import { formatIssue } from "./policy-events.js";
import { createRecordLines, readStateFile, writeStateFile, type Progress } from "./state-file.js";
import { startSidecar, StartupError } from "./start-sidecar.js";

const USAGE = `limitr-sidecar — usage-policy decision sidecar

Usage:
  limitr-sidecar serve --policy FILE [options]     run the sidecar
  limitr-sidecar check-policy [--strict] FILE      validate a policy; print every error, or a summary
                                                   (--strict: warnings fail it too)
  limitr-sidecar export --data-dir DIR [--out F]   write all state as JSON Lines (default stdout)
  limitr-sidecar import --data-dir DIR [--in F]    load JSON Lines state (sidecar stopped; F is checked whole first;
                                                   from stdin, the default, only its first 10,000 records are;
                                                   after them, records are imported up to a refused one)
  limitr-sidecar help                              this text (also COMMAND --help or -h)

serve options (flags override the LIMITR_* environment variables):
${serveOptionsHelp()}
`;

/**
 * Stop signals that came while the CLI loaded, held by the entry point (main.ts) until a command
 * takes them over. `release` stops holding them.
 */
export interface EarlySignals {
  readonly held: readonly NodeJS.Signals[];
  release(): void;
}

/** Runs one command line; resolves with the process's exit code. */
export function runCli(argv: readonly string[], early: EarlySignals): Promise<number> {
  return main(argv, early).catch(exitCodeOf);
}

async function main(argv: readonly string[], early: EarlySignals): Promise<number> {
  const [command, ...rest] = argv;
  // Only `serve` stops cleanly on a signal; the other commands end by its default action, as
  // they would have had it come a moment later.
  if (command !== "serve") takeDefaultActions(early);
  if (asksForHelp(rest) && command !== undefined && SUBCOMMANDS.has(command)) {
    process.stdout.write(USAGE);
    return 0;
  }
  switch (command) {
    case "serve":
      return serve(rest, early);
    case "check-policy":
      return checkPolicy(rest);
    case "export":
      return exportState(rest);
    case "import":
      return importState(rest);
    case undefined:
    case "help":
    case "--help":
    case "-h":
      process.stdout.write(USAGE);
      return command === undefined ? 2 : 0;
    default:
      process.stderr.write(`unknown command '${command}'\n\n${USAGE}`);
      return 2;
  }
}

const SUBCOMMANDS: ReadonlySet<string> = new Set(["serve", "check-policy", "export", "import"]);

/** `--help` or `-h` among a subcommand's arguments (before a `--`, after which all are operands). */
function asksForHelp(args: readonly string[]): boolean {
  const end = args.indexOf("--");
  return (end === -1 ? args : args.slice(0, end)).some((a) => a === "--help" || a === "-h");
}

async function serve(argv: readonly string[], early: EarlySignals): Promise<number> {
  let config: ServeConfig;
  try {
    config = parseServeConfig(argv, process.env);
  } catch (e) {
    takeDefaultActions(early);
    throw e;
  }
  const logger = createLogger({ level: config.logLevel });
  // Listening from the start: a pod deleted while the sidecar loads, opens its store or reads its
  // policy still stops cleanly and exits 0 (SPEC §7), where the signal's default action would end
  // it at once; and SIGHUP's default action would end it too. Those that came while the CLI
  // loaded are handled now, in the order they came.
  const signals = listenForSignals(logger, config.shutdownGraceMs);
  early.release();
  for (const signal of early.held) process.emit(signal as "SIGTERM", signal);
  let running: Awaited<ReturnType<typeof startSidecar>>;
  try {
    running = await startSidecar(config, logger);
  } catch (e) {
    if (e instanceof StartupError) {
      logger.error(e.message);
      return 1;
    }
    throw e;
  }
  logger.info("listening", {
    grpc: running.grpcAddress,
    ...(running.httpAddress === undefined ? {} : { http: running.httpAddress }),
    ...(running.healthAddress === undefined ? {} : { health: running.healthAddress }),
    ...(running.metricsAddress === undefined ? {} : { metrics: running.metricsAddress }),
    policy: config.policy,
    policyVersion: running.policyVersion,
    dataDir: config.dataDir,
  });
  const started = running;
  return new Promise<number>((resolve) => {
    signals.started({
      stop: () =>
        started.stop().then(
          () => resolve(0),
          (e: unknown) => {
            logger.error("shutdown failed", { err: e });
            resolve(1);
          },
        ),
      reload: () => void started.reloadPolicy("SIGHUP"),
    });
  });
}

/** What the signal handlers do once the sidecar is serving. */
interface SignalActions {
  stop(): void;
  reload(): void;
}

/**
 * SIGTERM and SIGINT stop the sidecar, SIGHUP re-reads the policy. Signals that come before
 * `started` are kept: a stop then follows start-up at once, and a SIGHUP re-reads the policy
 * (start-up may have read it before the change the signal announces). A second stop signal
 * (`docker stop` after a timeout, a second Ctrl-C) changes nothing once serving: the drain is
 * already bounded by the grace period, and cutting it short would cancel answers of counted calls
 * and skip closing LMDB. During start-up nothing has been answered, so a start-up that hangs (a
 * policy read that never returns) ends by the signal's default action at a second stop signal,
 * or when the grace period after the first is over.
 */
function listenForSignals(logger: Logger, graceMs: number): { started(actions: SignalActions): void } {
  let actions: SignalActions | undefined;
  let stopRequested = false;
  let reloadRequested = false;
  let startUpDeadline: NodeJS.Timeout | undefined;
  // The signal's own default action: process.exit() would wait for a thread-pool thread stuck
  // in the very read that hangs start-up.
  const abandonStartUp = (signal: NodeJS.Signals, why: string): void => {
    logger.error(`start-up abandoned: ${why}`);
    process.removeAllListeners(signal);
    process.kill(process.pid, signal);
  };
  const stop = (signal: NodeJS.Signals): void => {
    if (stopRequested) {
      if (actions === undefined) return abandonStartUp(signal, `a second ${signal} while starting`);
      logger.info("signal received; already stopping", { signal });
      return;
    }
    logger.info("signal received", { signal, ...(actions === undefined ? { duringStartUp: true } : {}) });
    stopRequested = true;
    if (actions !== undefined) actions.stop();
    else startUpDeadline = setTimeout(() => abandonStartUp(signal, `still starting ${graceMs} ms after ${signal}`), graceMs).unref();
  };
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));
  process.on("SIGHUP", () => {
    logger.info("signal received", { signal: "SIGHUP", ...(actions === undefined ? { duringStartUp: true } : {}) });
    if (actions === undefined) reloadRequested = true;
    else actions.reload();
  });
  return {
    started(a) {
      actions = a;
      clearTimeout(startUpDeadline);
      if (stopRequested) a.stop();
      else if (reloadRequested) a.reload();
    },
  };
}

function checkPolicy(argv: readonly string[]): number {
  const { positionals, values } = parseArgs({ args: [...argv], options: { strict: { type: "boolean" } }, allowPositionals: true, strict: true });
  const [file] = positionals;
  if (file === undefined || positionals.length !== 1) throw new ConfigError("check-policy takes exactly one FILE");
  const bytes = readInputFile(file);
  // The watcher's decoding, so that check-policy passes exactly the files the sidecar applies.
  const decoded = decodePolicyBytes(bytes);
  const result = decoded.ok ? loadPolicy(decoded.text, { version: contentVersion(bytes) }) : decoded;
  if (!result.ok) {
    const errors = result.issues.filter((i) => i.kind === "error");
    process.stdout.write(`${file}: ${errors.length} error(s); the policy is rejected\n`);
    for (const issue of result.issues) process.stdout.write(`  ${issue.kind}: ${formatIssue(issue)}\n`);
    return 1;
  }
  for (const w of result.warnings) process.stdout.write(`  warning: ${formatIssue(w)}\n`);
  // For CI: a warning may be a typo that loosens a limit (`scop: org` meters each user, not the org).
  if (values.strict === true && result.warnings.length > 0) {
    process.stdout.write(`${file}: ${result.warnings.length} warning(s); rejected by --strict\n`);
    return 1;
  }
  process.stdout.write(`${file}: valid (version ${result.policy.version})\n\n${summarizePolicy(result.policy)}\n`);
  return 0;
}

async function exportState(argv: readonly string[]): Promise<number> {
  const { values } = parseArgs({ args: [...argv], options: { "data-dir": { type: "string" }, out: { type: "string" } }, strict: true });
  // Read-only: an export may run next to the sidecar that writes the dir without stopping it.
  const store = createLmdbStore({ path: requireFlag(values["data-dir"], "--data-dir"), readOnly: true });
  try {
    await writeStateFile(store.exportState(), values.out ?? "-", progressReporter("exported"));
    return 0;
  } finally {
    await store.close();
  }
}

/**
 * How many records from stdin are read and checked before the dir is opened to write. Bounded:
 * stdin cannot be read twice, and a whole export may not fit in memory.
 */
const STDIN_CHECKED_AHEAD = 10_000;

async function importState(argv: readonly string[]): Promise<number> {
  const { values } = parseArgs({ args: [...argv], options: { "data-dir": { type: "string" }, in: { type: "string" } }, strict: true });
  const dataDir = requireFlag(values["data-dir"], "--data-dir");
  const input = values.in ?? "-";
  // Bad input changes nothing: read the whole file once and check every record as the store
  // will before writing one, against what the dir holds (a new dir is not created for a file
  // refused). stdin cannot be read twice: its first records are read and checked so, which is
  // all of a small input, and a refused start (the wrong stream piped in) still takes nothing
  // over; past them, records are imported up to a refused one.
  const lines = createRecordLines();
  const fieldOf = (i: number): string => `line ${lines.lineOf(i)}`;
  const progress = progressReporter("imported");
  // The reader counts records read: while the store takes them, its live count follows the
  // import closely (not while stdin's first records are checked), but its total comes at the end
  // of the input, before the last of them are on disk, or a full disk refuses them.
  let importing = false;
  const live: Progress = (count, done) => {
    if (importing && !done) progress(count, false);
  };
  let store: LmdbStore | undefined;
  try {
    let records: AsyncIterable<StateRecord>;
    if (input === "-") {
      const source = readStateFile(input, live, lines);
      const ahead: StateRecord[] = [];
      for (let next = await source.next(); next.done !== true; next = await source.next()) {
        ahead.push(next.value);
        if (ahead.length >= STDIN_CHECKED_AHEAD) break;
      }
      store = await checkStateFile(dataDir, () => fromArray(ahead), fieldOf);
      records = thenRest(ahead, source);
    } else {
      const checkLines = createRecordLines();
      store = await checkStateFile(dataDir, () => readStateFile(input, () => undefined, checkLines), (i) => `line ${checkLines.lineOf(i)}`);
      records = readStateFile(input, live, lines);
    }
    store ??= createLmdbStore({ path: dataDir });
    importing = true;
    const { count } = await store.importState(records, fieldOf);
    progress(count, true);
    return 0;
  } catch (e) {
    // The store says what ran out and how far the import got; what to do next is for the
    // operator of an offline dir, not the store's advice to a running sidecar's (prune events,
    // raise the size limit: the import has neither). Nothing else writes the dir, so more room
    // and the same command finish the import. From the first open on: the check opens a dir of
    // an older format to write it, and that claim upgrades it, which writes.
    if (!isLimitrError(e, "RESOURCE_EXHAUSTED")) throw e;
    // Only where records were imported (the store's message counts them): not when an open failed.
    const resumed = /\d record\(s\) imported/.test(e.message) ? " (records replace, so the ones already imported are written again unchanged)" : "";
    throw new LimitrError(
      e.code,
      `${withoutStoreAdvice(e.message)}. Nothing else writes ${dataDir}: free space on its file system and run the import again${resumed}, ` +
        "or import into a new --data-dir on a larger file system",
      { cause: e },
    );
  } finally {
    await store?.close();
  }
}

async function* fromArray<T>(items: readonly T[]): AsyncGenerator<T> {
  yield* items;
}

/** `first`, then what `rest` has left. */
async function* thenRest<T>(first: readonly T[], rest: AsyncIterator<T>): AsyncGenerator<T> {
  yield* first;
  for (let next = await rest.next(); next.done !== true; next = await rest.next()) yield next.value;
}

/**
 * Checks `records` (read afresh by each call) against what `dataDir` holds. Read through a
 * read-only open: the writer role is taken only by the import, so input refused leaves a sidecar
 * still serving the dir (the import wants it stopped) serving it. A dir of an older storage
 * format has no read-only open; the import would upgrade it anyway, so it is opened to write for
 * the check, and returned then.
 */
async function checkStateFile(dataDir: string, records: () => AsyncIterable<StateRecord>, fieldOf: (index: number) => string): Promise<LmdbStore | undefined> {
  const check = (stored: LmdbStore | undefined): Promise<number> => checkStateRecords(records(), stored, fieldOf);
  if (!existsSync(join(dataDir, DATA_FILE))) {
    await check(undefined);
    return undefined;
  }
  let reader: LmdbStore;
  try {
    reader = createLmdbStore({ path: dataDir, readOnly: true });
  } catch (e) {
    // An environment with no data yet (NOT_FOUND) holds nothing to check against.
    if (isLimitrError(e, "NOT_FOUND")) {
      await check(undefined);
      return undefined;
    }
    if (!isLimitrError(e, "FAILED_PRECONDITION")) throw e;
    // An older format (upgraded by the writer's open) or one this build refuses (refused again).
    const writer = createLmdbStore({ path: dataDir });
    try {
      await check(writer);
    } catch (checkError) {
      await writer.close();
      throw checkError;
    }
    return writer;
  }
  try {
    await check(reader);
  } finally {
    await reader.close();
  }
  return undefined;
}

function requireFlag(value: string | undefined, flag: string): string {
  if (value === undefined || value === "") throw new ConfigError(`${flag} is required`);
  return value;
}

/** A live counter on a terminal; a single summary line otherwise (logs, CI, pipes). */
function progressReporter(verb: string): Progress {
  const tty = process.stderr.isTTY;
  const started = Date.now();
  return (count, done) => {
    if (tty && !done) {
      process.stderr.write(`\r${verb} ${count.toLocaleString("en-US")} records…`);
      return;
    }
    if (!done) return;
    const seconds = ((Date.now() - started) / 1000).toFixed(1);
    process.stderr.write(`${tty ? "\r" : ""}${verb} ${count.toLocaleString("en-US")} records in ${seconds}s\n`);
  };
}

/** Stops holding the early signals and lets those that came take their default action. */
function takeDefaultActions(early: EarlySignals): void {
  early.release();
  for (const signal of early.held) process.kill(process.pid, signal);
}

function exitCodeOf(e: unknown): number {
  if (e instanceof ConfigError || (e instanceof TypeError && (e as { code?: string }).code?.startsWith("ERR_PARSE_ARGS"))) {
    process.stderr.write(`limitr-sidecar: ${(e as Error).message}\n`);
    return 2;
  }
  if (e instanceof LimitrError) {
    process.stderr.write(`limitr-sidecar: ${e.message}\n`);
    return 1;
  }
  process.stderr.write(`limitr-sidecar: unexpected error: ${(e as Error).stack ?? String(e)}\n`);
  return 1;
}

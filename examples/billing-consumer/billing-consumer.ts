/**
 * A billing consumer: follows `meter-overage` events and prints one billing line per overage.
 * Its cursor (the next sequence to process) is durable: written to a temporary file, flushed,
 * and renamed over the cursor file after each event and each position the sidecar reports, so
 * a restart of the consumer or of the sidecar resumes exactly where it stopped. Each line carries the event's sequence (`seq=`),
 * the key a billing system deduplicates on if the process is killed between printing a line
 * and saving the cursor (the only window where a line can repeat; a normal stop never repeats).
 */
import { closeSync, existsSync, fsyncSync, openSync, readFileSync, renameSync, writeSync } from "node:fs";
// In your app: import type { LimitrClient, LimitrEvent } from "limitr-sidecar";
import type { LimitrClient, LimitrEvent } from "../../src/client/index.js";

/** The next sequence to process; 1 (the oldest retained event) when there is no cursor yet. */
export function readCursor(file: string): number {
  if (!existsSync(file)) return 1;
  const { nextSequence } = JSON.parse(readFileSync(file, "utf8")) as { nextSequence: number };
  return nextSequence;
}

/** Write-then-rename: the cursor file is always either the old or the new cursor, never torn. */
export function writeCursor(file: string, nextSequence: number): void {
  const tmp = `${file}.tmp`;
  const fd = openSync(tmp, "w");
  try {
    writeSync(fd, `${JSON.stringify({ nextSequence })}\n`);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, file);
}

/** `seq=7 customer=acme entitlement=storage_mb overage=250 MB price=0.025000 USD`. */
export function billingLine(e: LimitrEvent): string {
  const m = e.meter!;
  const price = m.overagePrice === undefined ? "unpriced" : `${m.overagePrice.toFixed(6)} USD`;
  return `seq=${e.sequence} time=${e.time?.toISOString()} customer=${m.owner} entitlement=${m.entitlement} overage=${m.overage} ${m.unit} price=${price}`;
}

export interface ConsumerOptions {
  readonly limitr: LimitrClient;
  readonly cursorFile: string;
  /** Where billing lines go (stdout in main.ts). */
  readonly print: (line: string) => void;
  /** Warnings, e.g. events pruned before they were processed. */
  readonly warn?: (line: string) => void;
  /** Stops after the event being processed. */
  readonly signal?: AbortSignal;
}

/** Runs until `signal` aborts; reconnects by itself while the sidecar restarts. */
export async function runBillingConsumer(o: ConsumerOptions): Promise<void> {
  // The cursor means "every overage below it is billed". The stream is filtered, so most of the
  // log goes by without an event to advance it: the positions the sidecar reports after quiet
  // stretches move it past those too. Without them a restart after retention pruned the
  // unbilled-but-unbillable events behind a stale cursor would warn of a loss that never was.
  let cursor = readCursor(o.cursorFile);
  const advance = (next: number): void => {
    if (next <= cursor) return;
    writeCursor(o.cursorFile, next);
    cursor = next;
  };
  // A position is reported while the iterator is asked for its next item, so every event
  // before it has been printed and its cursor written.
  const events = o.limitr.events({ types: ["meter-overage"], fromSequence: cursor, onPosition: advance, ...(o.signal ? { signal: o.signal } : {}) });
  for await (const item of events) {
    if (item.kind === "events-lost") {
      o.warn?.(`events ${item.requestedSequence}..${item.firstAvailableSequence - 1} were pruned before being billed`);
      advance(item.firstAvailableSequence);
      continue;
    }
    o.print(billingLine(item));
    advance(item.sequence + 1);
  }
}

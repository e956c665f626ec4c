/** Coalesces bursts of triggers into one run. */
export interface Debouncer {
  /** Schedules a run `waitMs` after the last trigger, but no later than `maxWaitMs` after the first. */
  trigger(): void;
  cancel(): void;
}

/**
 * Trailing debounce with a ceiling. A kubelet swap is several file events in a few milliseconds;
 * the ceiling keeps a continuous stream of events (a reload storm, a chatty directory) from
 * postponing the re-read forever.
 */
export function createDebouncer(options: { readonly waitMs: number; readonly maxWaitMs: number; readonly run: () => void }): Debouncer {
  let timer: NodeJS.Timeout | undefined;
  let firstTriggerAt: number | undefined;

  const fire = (): void => {
    timer = undefined;
    firstTriggerAt = undefined;
    options.run();
  };

  return {
    trigger() {
      const now = Date.now();
      firstTriggerAt ??= now;
      if (timer) clearTimeout(timer);
      const delay = Math.max(0, Math.min(options.waitMs, firstTriggerAt + options.maxWaitMs - now));
      timer = setTimeout(fire, delay);
      // The server owns the process lifetime; a pending re-read must not keep it alive.
      timer.unref();
    },
    cancel() {
      if (timer) clearTimeout(timer);
      timer = undefined;
      firstTriggerAt = undefined;
    },
  };
}

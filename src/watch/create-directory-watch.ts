import { watch, type FSWatcher } from "node:fs";
import { lstat, stat } from "node:fs/promises";
import { dirname } from "node:path";
import type { WatchLogger } from "./types.js";

/** A re-armable notification source for one directory. */
export interface DirectoryWatch {
  /**
   * Arms the watch if it is not armed, or re-arms it if the directory was replaced (new inode).
   * Never throws: a directory that cannot be watched is logged and left to the periodic re-read.
   */
  ensure(): Promise<void>;
  close(): void;
}

/**
 * Watches a DIRECTORY, not a file: kubelet replaces the `..data` symlink by rename, so a watch on
 * the file (or on what it resolves to) sees the first swap and then nothing, while the directory
 * sees every swap, in-place write and rename. Every event counts, whatever its file name: a
 * re-read is one small read and a hash, and filtering by name would miss symlink chains.
 */
export function createDirectoryWatch(options: { readonly dir: string; readonly onEvent: () => void; readonly logger: WatchLogger }): DirectoryWatch {
  const { dir, logger } = options;
  let watcher: FSWatcher | undefined;
  let armedIno: number | undefined;
  let closed = false;
  let lastFailure = "";

  const disarm = (): void => {
    watcher?.close();
    watcher = undefined;
    armedIno = undefined;
  };

  return {
    async ensure() {
      if (closed) return;
      let ino: number;
      try {
        ino = (await stat(dir)).ino;
      } catch (err) {
        disarm();
        reportOnce(`cannot watch policy directory: ${String(err)}`, err);
        return;
      }
      if (closed || (watcher && armedIno === ino)) return;
      disarm();
      try {
        // persistent: false — the server, not a file watch, decides when the process may exit.
        const w = watch(dir, { persistent: false }, () => options.onEvent());
        w.on("error", (err) => {
          // inotify can fail later (directory removed, watch limit); fall back to polling until
          // `ensure` re-arms it on the next periodic re-read.
          if (watcher === w) disarm();
          logger.warn("policy directory watch failed; relying on periodic re-read until it is re-armed", { dir, err });
        });
        watcher = w;
        armedIno = ino;
        if (lastFailure) logger.info("policy directory watch armed again", { dir });
        lastFailure = "";
      } catch (err) {
        reportOnce(`cannot watch policy directory: ${String(err)}`, err);
      }
    },
    close() {
      closed = true;
      disarm();
    },
  };

  // The periodic re-read calls `ensure` every interval; say a failure once, not every 30 s.
  function reportOnce(message: string, err: unknown): void {
    if (message === lastFailure) return;
    lastFailure = message;
    logger.warn(message + "; relying on periodic re-read", { dir, err });
  }
}

/**
 * `dir` itself, or, when it is a symlink (or missing), its nearest ancestor that exists and is not
 * one. A ConfigMap item projected under a sub-path is reached through `conf -> ..data/conf`: a
 * watch there resolves into kubelet's timestamped directory, which the next swap deletes and
 * which does not exist at all while the item is out of the ConfigMap; the volume directory that
 * holds `..data` is never replaced, and sees every swap.
 */
export async function nearestRealDirectory(dir: string): Promise<string> {
  for (let at = dir; ; ) {
    try {
      if (!(await lstat(at)).isSymbolicLink()) return at;
    } catch (err) {
      const code = (err as { code?: unknown } | null)?.code;
      // Missing: the directory may come back, so its parent is where that shows. Anything else
      // (no permission): leave `dir` alone, as before, and to its own watch's error report.
      if (code !== "ENOENT" && code !== "ENOTDIR") return dir;
    }
    const parent = dirname(at);
    if (parent === at) return at;
    at = parent;
  }
}

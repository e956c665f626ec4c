/** LMDB stores in temp dirs that the tests clean up. */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createLmdbStore, type LmdbStore, type LmdbStoreOptions } from "../../src/store/index.js";

export function tempDir(): { readonly dir: string; readonly remove: () => void } {
  const dir = mkdtempSync(join(tmpdir(), "limitr-store-"));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Opens a store in a fresh temp dir; `dispose` closes it and deletes the dir. */
export function tempStore(options: Omit<LmdbStoreOptions, "path"> = {}): {
  readonly store: LmdbStore;
  readonly dir: string;
  readonly dispose: () => Promise<void>;
} {
  const { dir, remove } = tempDir();
  const store = createLmdbStore({ path: dir, ...options });
  return {
    store,
    dir,
    dispose: async () => {
      await store.close();
      remove();
    },
  };
}

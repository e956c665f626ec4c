/**
 * Reproduces kubelet's AtomicWriter (pkg/volume/util/atomic_writer.go), the code that projects a
 * ConfigMap into a volume directory, step for step:
 *
 *   1. read the current `..data` link (the old timestamped directory), if any;
 *   2. skip the write entirely if every file's bytes are unchanged and no file was removed;
 *   3. create `..<UTC yyyy_mm_dd_hh_mm_ss>.<random>` (mode 0755) and write every file into it
 *      (mode 0644, the ConfigMap volume's defaultMode);
 *   4. create the user-visible symlinks that do not exist yet: `policy.yaml -> ..data/policy.yaml`;
 *   5. symlink `..data_tmp -> ..<timestamp>.<random>` and rename it over `..data` (the atomic step);
 *   6. remove user-visible links whose keys left the ConfigMap;
 *   7. remove the old timestamped directory.
 *
 * The visible file is therefore a symlink to a symlinked directory whose target changes; a watch
 * on the file itself stops seeing anything after the first swap.
 */
import { randomInt } from "node:crypto";
import { mkdir, readFile, readdir, readlink, rename, rm, symlink, writeFile, chmod } from "node:fs/promises";
import { dirname, join } from "node:path";

const DATA_DIR = "..data";
const NEW_DATA_DIR = "..data_tmp";

export interface KubeletWriter {
  /** The volume directory (what a pod mounts at e.g. /etc/limitr). */
  readonly dir: string;
  /**
   * Projects `files` (ConfigMap key → content) as kubelet does. Resolves true when it swapped
   * `..data`, false when kubelet would have seen no change and written nothing.
   */
  write(files: Readonly<Record<string, string | Uint8Array>>): Promise<boolean>;
  /** The timestamped directory `..data` points at now, or undefined before the first write. */
  currentDataDir(): Promise<string | undefined>;
}

export function createKubeletWriter(dir: string): KubeletWriter {
  const currentDataDir = async (): Promise<string | undefined> => {
    try {
      return await readlink(join(dir, DATA_DIR));
    } catch (err) {
      if ((err as { code?: unknown }).code === "ENOENT") return undefined;
      throw err;
    }
  };

  return {
    dir,
    currentDataDir,
    async write(files) {
      const payload = new Map(Object.entries(files).map(([k, v]) => [k, typeof v === "string" ? Buffer.from(v, "utf8") : Buffer.from(v)]));
      for (const key of payload.keys()) {
        if (key === "" || key.startsWith("..") || key.includes("/")) throw new Error(`invalid ConfigMap key for this helper: ${key}`);
      }

      // (1)
      const oldTsDir = await currentDataDir();
      // (2)
      const visible = (await readdir(dir)).filter((name) => !name.startsWith(".."));
      const toRemove = visible.filter((name) => !payload.has(name));
      if (oldTsDir !== undefined && toRemove.length === 0 && (await unchanged(join(dir, oldTsDir), payload))) return false;

      // (3)
      const tsDir = await makeTimestampDir(dir);
      await chmod(tsDir, 0o755);
      for (const [key, bytes] of payload) {
        const target = join(tsDir, key);
        await mkdir(dirname(target), { recursive: true });
        await writeFile(target, bytes, { mode: 0o644 });
        await chmod(target, 0o644);
      }
      // (4)
      for (const key of payload.keys()) {
        if (!visible.includes(key)) await symlink(join(DATA_DIR, key), join(dir, key));
      }
      // (5)
      const tsName = tsDir.slice(dir.length + 1);
      await symlink(tsName, join(dir, NEW_DATA_DIR));
      await rename(join(dir, NEW_DATA_DIR), join(dir, DATA_DIR));
      // (6)
      for (const name of toRemove) await rm(join(dir, name));
      // (7)
      if (oldTsDir !== undefined) await rm(join(dir, oldTsDir), { recursive: true, force: true });
      return true;
    },
  };
}

async function unchanged(oldTsDir: string, payload: ReadonlyMap<string, Buffer>): Promise<boolean> {
  for (const [key, bytes] of payload) {
    try {
      if (!(await readFile(join(oldTsDir, key))).equals(bytes)) return false;
    } catch {
      return false;
    }
  }
  return true;
}

/**
 * Go's `os.MkdirTemp(dir, "..2006_01_02_15_04_05.")`: the pattern plus a random decimal number,
 * retried on a name clash (two writes within one second).
 */
async function makeTimestampDir(dir: string): Promise<string> {
  for (;;) {
    const candidate = join(dir, `..${timestamp(new Date())}.${randomInt(0, 2 ** 32 - 1)}`);
    try {
      await mkdir(candidate, { mode: 0o700 });
      return candidate;
    } catch (err) {
      if ((err as { code?: unknown }).code !== "EEXIST") throw err;
    }
  }
}

/** Go's `time.Now().UTC().Format("2006_01_02_15_04_05")`. */
function timestamp(d: Date): string {
  const p = (n: number): string => String(n).padStart(2, "0");
  return `${d.getUTCFullYear()}_${p(d.getUTCMonth() + 1)}_${p(d.getUTCDate())}_${p(d.getUTCHours())}_${p(d.getUTCMinutes())}_${p(d.getUTCSeconds())}`;
}

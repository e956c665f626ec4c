/**
 * A store on a file system that really fills up: a 1 MiB tmpfs mounted for these tests. Mounting
 * needs root (CI runs as root); where it is not allowed the suite is skipped, and vitest lists it
 * as skipped. The `maxDataBytes` budget, which needs no mount, is tested in lmdb-store.test.ts.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmdirSync, rmSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import type { Write } from "../../src/engine/index.js";
import { isLimitrError } from "../../src/errors/index.js";
import { createLmdbStore } from "../../src/store/index.js";
import { storeError, withoutStoreAdvice } from "../../src/store/store-error.js";
import { meter } from "./fixtures.js";

/** Mounts a small tmpfs, or says why it cannot. */
function mountTmpfs(bytes: number): { readonly dir: string; readonly unmount: () => void } | undefined {
  const dir = mkdtempSync(join(tmpdir(), "limitr-full-fs-"));
  try {
    execFileSync("mount", ["-t", "tmpfs", "-o", `size=${bytes}`, "tmpfs", dir], { stdio: "ignore" });
  } catch {
    rmdirSync(dir);
    return undefined;
  }
  return {
    dir,
    unmount: () => {
      execFileSync("umount", [dir]);
      rmdirSync(dir);
    },
  };
}

const fs = mountTmpfs(1024 * 1024);

/** 50 meters of distinct owners: a commit that writes several new pages in one go. */
const batch = (from: number): Write[] =>
  Array.from({ length: 50 }, (_, j) => ({ kind: "meter-put", meter: meter(`owner-${from + j}`, "chat", BigInt(from + j)) }));

const ioError = (): Error => Object.assign(new Error("Input/output error"), { code: 5 });

describe.skipIf(fs === undefined)("LMDB store on a full file system", () => {
  afterAll(() => fs?.unmount());

  it("reports a full disk as RESOURCE_EXHAUSTED, also when LMDB sees a write cut short (EIO), changes nothing, and recovers once space is freed", async () => {
    const mnt = fs!.dir;
    const messages: string[] = [];
    // Where the space runs out decides whether LMDB's write fails outright (ENOSPC) or is cut
    // short (which LMDB reports as EIO): a few sizes of ballast give both.
    for (const ballastKiB of [64, 68, 72, 76, 80, 84, 88]) {
      const ballast = join(mnt, "ballast");
      writeFileSync(ballast, Buffer.alloc(ballastKiB * 1024));
      const path = join(mnt, "data");
      const store = createLmdbStore({ path });
      try {
        let failure: unknown;
        let next = 0;
        for (; next < 100_000; next += 50) {
          try {
            await store.commit(batch(next), []);
          } catch (e) {
            failure = e;
            break;
          }
        }
        expect(isLimitrError(failure, "RESOURCE_EXHAUSTED")).toBe(true);
        const message = (failure as Error).message;
        expect(message).toMatch(/^storage full while committing a batch of 1 commit\(s\): /);
        messages.push(message);
        // Nothing of the failed batch, everything before it.
        expect(store.getMeter(`owner-${next}`, "chat")).toBeUndefined();
        expect(store.getMeter(`owner-${next - 1}`, "chat")?.value).toBe(BigInt(next - 1));

        unlinkSync(ballast);
        await store.commit(batch(next), []);
        await store.close();
        const again = createLmdbStore({ path });
        expect(again.getMeter(`owner-${next + 49}`, "chat")?.value).toBe(BigInt(next + 49));
        expect(again.getMeter("owner-0", "chat")?.value).toBe(0n);
        await again.close();
      } finally {
        await store.close();
        rmSync(path, { recursive: true, force: true });
        rmSync(ballast, { force: true });
      }
    }
    // The case this mapping exists for was among them (without it: UNAVAILABLE, "Input/output error").
    expect(messages.some((m) => /: Input\/output error, with \d+ bytes free on the file system of /.test(m))).toBe(true);
  });

  it("names an I/O error as storage full only when the file system has (nearly) no room left", () => {
    const ballast = join(fs!.dir, "fill");
    // Fill the tmpfs: a write past its size stops at what fits.
    try {
      writeFileSync(ballast, Buffer.alloc(2 * 1024 * 1024));
    } catch {
      // ENOSPC once full: what this test wants.
    }
    try {
      const full = storeError(ioError(), "committing", fs!.dir);
      expect(full.code).toBe("RESOURCE_EXHAUSTED");
      const roomy = storeError(ioError(), "committing", tmpdir());
      expect(roomy.code).toBe("UNAVAILABLE");
      expect(roomy.message).toBe("storage failed while committing: Input/output error");
      // Without a path to look at, an I/O error stays an I/O error.
      expect(storeError(ioError(), "reading").code).toBe("UNAVAILABLE");
    } finally {
      rmSync(ballast, { force: true });
    }
  });

  it("claims a data dir with a large reset-rule history again on a full disk, and keeps the history", async () => {
    const path = join(fs!.dir, "history");
    const history = {
      since: 1,
      lineages: Array.from({ length: 600 }, (_, i) => ({
        plan: `plan-${i}`,
        entitlement: "tokens",
        rule: "daily",
        changes: [4, 3, 2, 1].map((at) => ({ at, rule: at % 2 === 0 ? "monthly:1" : "daily" })),
      })),
    };
    const first = createLmdbStore({ path });
    await first.commit([{ kind: "reset-rule-history", history }], []);
    // Fill the disk.
    let full: unknown;
    for (let next = 0; next < 100_000 && full === undefined; next += 50) {
      await first.commit(batch(next), []).catch((e: unknown) => (full = e));
    }
    expect(isLimitrError(full, "RESOURCE_EXHAUSTED")).toBe(true);
    await first.close();
    for (let i = 0; i < 2; i++) {
      const again = createLmdbStore({ path });
      expect(again.resetRuleHistory(), `claim ${i}`).toEqual(history);
      await again.close();
    }
    rmSync(path, { recursive: true, force: true });
  });
});

describe("storage-full advice", () => {
  it("tells a running sidecar's operator what to do, and can be left out for a caller that says its own", () => {
    const full = storeError(Object.assign(new Error("MDB_MAP_FULL: Environment mapsize limit reached"), { code: "MDB_MAP_FULL" }), "committing");
    expect(full.code).toBe("RESOURCE_EXHAUSTED");
    expect(full.message).toBe("storage full while committing: MDB_MAP_FULL: Environment mapsize limit reached (free disk space, prune events, or raise the store size limit)");
    // As an import cut short carries it, with how far it got after it.
    expect(withoutStoreAdvice(`${full.message}; 3 record(s) imported (through line 4), none after`)).toBe(
      "storage full while committing: MDB_MAP_FULL: Environment mapsize limit reached; 3 record(s) imported (through line 4), none after",
    );
  });
});

describe("storeError without a readable file system", () => {
  it("keeps an I/O error UNAVAILABLE when the free space of the data path cannot be read", () => {
    const gone = join(tmpdir(), `limitr-no-such-dir-${process.pid}`, "limitr.mdb");
    const e = storeError(ioError(), "committing", gone);
    expect(e.code).toBe("UNAVAILABLE");
    expect(e.message).toBe("storage failed while committing: Input/output error");
  });
});

/**
 * The CLI subcommands operators script: check-policy (CI for ConfigMap edits) and
 * export / import of state as JSON Lines.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmdirSync, rmSync, statSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { open } from "lmdb";
import { afterAll, describe, expect, it } from "vitest";
import { allowOne, connectClients, unary, type Obj } from "./helpers/clients.js";
import { CLI, REPO_ROOT, runCli, startSidecar, stopSidecar } from "./helpers/sidecar-process.js";
import { makeTestDir } from "./helpers/test-policy.js";

describe("check-policy", () => {
  it("prints the version and a plans × entitlements summary for a valid policy, exit 0", () => {
    const r = runCli(["check-policy", "examples/policies/combined.yaml"]);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/combined\.yaml: valid \(version [0-9a-f]{16}\)/);
    for (const word of ["free", "pro", "seats", "storage_mb", "gpt_tokens", "priority_support"]) expect(r.stdout).toContain(word);
  });

  it("prints every error with its path and exits 1 for an invalid policy", () => {
    const t = makeTestDir("policy:\n  plans:\n    a: { default: true, entitlements: { x: { limit: { credit: ghost, value: -1 } } } }\n    b: { default: true, entitlements: {} }\n");
    try {
      const r = runCli(["check-policy", t.policyPath]);
      expect(r.status).toBe(1);
      expect(r.stdout).toContain("the policy is rejected");
      expect(r.stdout).toContain('policy.plans.a.entitlements.x.limit.credit: credit "ghost" does not exist');
      expect(r.stdout).toContain("policy.plans.a.entitlements.x.limit.value");
      expect(r.stdout).toMatch(/policy\.plans\.b\.default/);
    } finally {
      t.cleanup();
    }
  });

  it("prints the usage for COMMAND --help or -h, exit 0", () => {
    for (const command of ["serve", "check-policy", "export", "import"]) {
      for (const flag of ["--help", "-h"]) {
        const r = runCli([command, flag]);
        expect(r.status, `${command} ${flag}: ${r.stderr}`).toBe(0);
        expect(r.stdout).toContain("Usage:");
        expect(r.stdout).toContain("--max-message-bytes");
      }
    }
    expect(runCli(["serve", "--policy", "p.yaml", "-h"]).status).toBe(0);
  });

  it("decodes the file as the running sidecar does: a BOM is dropped, bytes that are not UTF-8 are refused", () => {
    const t = makeTestDir();
    try {
      const bomJson = join(t.dir, "bom.json");
      writeFileSync(bomJson, Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('{"policy": {"plans": {"p": {"default": true}}}}')]));
      const bom = runCli(["check-policy", bomJson]);
      expect(bom.stdout).toContain("bom.json: valid");
      expect(bom.status).toBe(0);

      writeFileSync(t.policyPath, Buffer.from("policy:\n  plans:\n    p\xff: { default: true }\n", "latin1"));
      const latin1 = runCli(["check-policy", t.policyPath]);
      expect(latin1.stdout).toContain("error: policy: the file is not valid UTF-8");
      expect(latin1.status).toBe(1);
    } finally {
      t.cleanup();
    }
  });

  it("fails a policy with warnings only under --strict", () => {
    const t = makeTestDir("policy:\n  credits: { seat: {} }\n  plans:\n    p:\n      default: true\n      entitlements:\n        seats: { scop: org, limit: { credit: seat, value: 3 } }\n");
    try {
      const lenient = runCli(["check-policy", t.policyPath]);
      expect(lenient.stdout).toContain('warning: policy.plans.p.entitlements.seats.scop: unknown field "scop" is ignored (did you mean "scope"?)');
      expect(lenient.status).toBe(0);
      const strict = runCli(["check-policy", "--strict", t.policyPath]);
      expect(strict.stdout).toContain('warning: policy.plans.p.entitlements.seats.scop: unknown field "scop" is ignored (did you mean "scope"?)');
      expect(strict.stdout).toContain("policy.yaml: 1 warning(s); rejected by --strict");
      expect(strict.status).toBe(1);
      expect(runCli(["check-policy", "--strict", "examples/policies/combined.yaml"]).status).toBe(0);
    } finally {
      t.cleanup();
    }
  });

  it("exits 2 on wrong usage", () => {
    expect(runCli(["check-policy"]).status).toBe(2);
    expect(runCli(["frobnicate"]).status).toBe(2);
  });
});

describe("files the subcommands cannot read or write", () => {
  const t = makeTestDir();
  afterAll(() => t.cleanup());

  it("are named in one line, exit 1, with nothing created", () => {
    const missing = join(t.dir, "missing.jsonl");
    const cases: [string[], string][] = [
      [["check-policy", missing], `cannot read ${missing}: no such file or directory (ENOENT)`],
      [["check-policy", t.dir], `cannot read ${t.dir}: illegal operation on a directory (EISDIR)`],
      [["import", "--data-dir", join(t.dir, "new"), "--in", missing], `cannot read ${missing}: no such file or directory (ENOENT)`],
      [["import", "--data-dir", join(t.dir, "new"), "--in", t.dir], `cannot read ${t.dir}: illegal operation on a directory (EISDIR)`],
      [["export", "--data-dir", t.dataDir, "--out", join(missing, "out.jsonl")], `cannot write ${join(missing, "out.jsonl")}: no such file or directory (ENOENT)`],
      [["export", "--data-dir", t.dataDir, "--out", t.dir], `cannot write ${t.dir}: illegal operation on a directory (EISDIR)`],
    ];
    runCli(["import", "--data-dir", t.dataDir, "--in", "/dev/null"]);
    for (const [args, message] of cases) {
      const r = runCli(args);
      expect(r.stderr, args.join(" ")).toBe(`limitr-sidecar: ${message}\n`);
      expect(r.status).toBe(1);
    }
    expect(existsSync(join(t.dir, "new"))).toBe(false);
  });
});

/** Whether this process may mount a tmpfs (root). */
function canMount(): boolean {
  const mnt = mkdtempSync(join(tmpdir(), "limitr-mount-probe-"));
  try {
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=64k", "tmpfs", mnt], { stdio: "ignore" });
    execFileSync("umount", [mnt]);
    return true;
  } catch {
    return false;
  } finally {
    rmdirSync(mnt);
  }
}

/** A tmpfs of `size` (mount's notation: `1m`) mounted on a new temp dir; needs root (`canMount`). */
function mountTmpfs(size: string): { readonly dir: string; readonly unmount: () => void } {
  const dir = mkdtempSync(join(tmpdir(), "limitr-tmpfs-"));
  execFileSync("mount", ["-t", "tmpfs", "-o", `size=${size}`, "tmpfs", dir]);
  return {
    dir,
    unmount: () => {
      execFileSync("umount", [dir]);
      rmdirSync(dir);
    },
  };
}

/** Fills the file system of `dir` to its last byte, or to `leftKiB` before it; returns the filler. */
function fillUp(dir: string, leftKiB = 0): string {
  const filler = join(dir, "filler");
  // A write past the size stops at what fits, then fails with ENOSPC: what this wants.
  spawnSync("dd", ["if=/dev/zero", `of=${filler}`, "bs=4k"], { stdio: "ignore" });
  truncateSync(filler, statSync(filler).size - leftKiB * 1024);
  return filler;
}

/** The end of every storage-full message of an import: what its operator can do. */
const OFFLINE_ADVICE =
  /\. Nothing else writes [^ ]+: free space on its file system and run the import again( \(.*\))?, or import into a new --data-dir on a larger file system\n$/;

describe("export and import", () => {
  const t = makeTestDir();
  afterAll(() => t.cleanup());

  it("moves every customer and meter to a new data dir exactly", async () => {
    const s = await startSidecar(["--policy", t.policyPath, "--data-dir", t.dataDir]);
    const c = connectClients(s.grpcAddress);
    await unary(c.admin, "UpsertCustomer", { customer_id: "org_1", type: "org", alt_ids: ["cus_stripe_1"], metadata: { tier: "gold" } });
    await allowOne(c, "org_1", "limited", 0.1);
    await allowOne(c, "org_1", "limited", 0.2);
    await allowOne(c, "u2", "counter", 1234567.891);
    const before = await unary<{ meters: Obj[] }>(c.decision, "GetMeters", { customer_id: "cus_stripe_1", entitlements: ["limited"] });
    c.close();
    await stopSidecar(s);

    const file = join(t.dir, "state.jsonl");
    const exported = runCli(["export", "--data-dir", t.dataDir, "--out", file]);
    expect(exported.status).toBe(0);
    // The event log's position, 2 customers (org_1, auto-created u2), 2 meters.
    expect(exported.stderr).toMatch(/exported 5 records in [\d.]+s/);
    const lines = readFileSync(file, "utf8").trim().split("\n");
    expect(lines).toHaveLength(5);
    expect(lines.some((l) => l.includes('"value":"0.3"'))).toBe(true); // exact, not 0.30000000000000004

    const stdoutExport = runCli(["export", "--data-dir", t.dataDir]);
    expect(stdoutExport.stdout.trim().split("\n")).toEqual(lines);

    const newDir = join(t.dir, "restored");
    const imported = runCli(["import", "--data-dir", newDir, "--in", file]);
    expect(imported.status).toBe(0);
    expect(imported.stderr).toMatch(/imported 5 records/);

    const s2 = await startSidecar(["--policy", t.policyPath, "--data-dir", newDir]);
    const c2 = connectClients(s2.grpcAddress);
    try {
      expect(await unary(c2.decision, "GetMeters", { customer_id: "cus_stripe_1", entitlements: ["limited"] })).toEqual(before);
      const u2 = await unary<{ meters: Obj[] }>(c2.decision, "GetMeters", { customer_id: "u2", entitlements: ["counter"] });
      expect(u2.meters[0]?.["value"]).toBe(1234567.891);
      const org = await unary<{ customer: Obj }>(c2.admin, "GetCustomer", { customer_id: "cus_stripe_1" });
      expect(org.customer).toMatchObject({ id: "org_1", type: "org", metadata: { tier: "gold" } });
    } finally {
      c2.close();
      await stopSidecar(s2);
    }
  });

  it("rejects a malformed line naming its line number, and imports nothing", () => {
    const file = join(t.dir, "bad.jsonl");
    writeFileSync(file, '{"customer":{"id":"ok"}}\n'.repeat(600) + '{"meter":{"owner":"x","value":"not-a-number"}}\n');
    const r = runCli(["import", "--data-dir", join(t.dir, "bad-import"), "--in", file]);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/line 601/); // past the first 500-record import chunk
    expect(existsSync(join(t.dir, "bad-import"))).toBe(false);
  });

  it("checks every record as the store will before importing: an id the store cannot key imports nothing", () => {
    const file = join(t.dir, "bad-id.jsonl");
    writeFileSync(file, '{"customer":{"id":"ok"}}\n'.repeat(600) + `{"customer":{"id":"${"x".repeat(600)}"}}\n`);
    const r = runCli(["import", "--data-dir", join(t.dir, "bad-id-import"), "--in", file]);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain("line 601.customer.id: must be at most 512 bytes (UTF-8)");
    expect(r.stderr).not.toMatch(/imported/);
    expect(existsSync(join(t.dir, "bad-id-import"))).toBe(false);
  });

  it("checks a file against what the dir holds before importing any of it; a restore over the same data is no conflict", () => {
    const dataDir = join(t.dir, "alt-ids");
    const first = join(t.dir, "alt-ids-1.jsonl");
    writeFileSync(first, '{"customer":{"id":"bob","altIds":["stripe_bob"]}}\n');
    expect(runCli(["import", "--data-dir", dataDir, "--in", first]).status).toBe(0);
    expect(runCli(["import", "--data-dir", dataDir, "--in", first]).status).toBe(0);
    const file = join(t.dir, "alt-ids-2.jsonl");
    writeFileSync(file, '{"customer":{"id":"ok"}}\n'.repeat(600) + '{"customer":{"id":"eve","altIds":["stripe_bob"]}}\n');
    const r = runCli(["import", "--data-dir", dataDir, "--in", file]);
    expect(r.status).toBe(1);
    expect(r.stderr).toBe('limitr-sidecar: line 601.customer.alt_ids[0]: alt id "stripe_bob" already belongs to customer "bob"\n');
    const lines = runCli(["export", "--data-dir", dataDir]).stdout.trim().split("\n");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain('"id":"bob"');
  });

  it("checks a file without taking the dir over: a sidecar still serving it keeps serving when the file is refused", async () => {
    const dataDir = join(t.dir, "served");
    const s = await startSidecar(["--policy", t.policyPath, "--data-dir", dataDir]);
    const c = connectClients(s.grpcAddress);
    try {
      await unary(c.admin, "UpsertCustomer", { customer_id: "bob", alt_ids: ["stripe_bob"] });
      const refused = join(t.dir, "refused.jsonl");
      for (const line of ['{"customer":{"id":"eve","altIds":["stripe_bob"]}}', '{"meter":{"owner":"x","entitlement":"limited","periodStart":"2026-12-07T17:41:54Z","value":"oops"}}']) {
        writeFileSync(refused, `${line}\n`);
        const r = runCli(["import", "--data-dir", dataDir, "--in", refused]);
        expect(r.status).toBe(1);
        expect(r.stderr).toMatch(/alt id "stripe_bob" already belongs to customer "bob"|must be a decimal number/);
      }
      expect(await allowOne(c, "bob", "limited", 0.1)).toMatchObject({ allowed: true });
      expect(s.logs.filter((l) => String(l["msg"]).includes("another process"))).toEqual([]);
    } finally {
      c.close();
      await stopSidecar(s);
    }
  });

  it("from stdin, checks the first records without taking the dir over: a sidecar still serving it keeps serving when they are refused", async () => {
    const dataDir = join(t.dir, "served-stdin");
    const s = await startSidecar(["--policy", t.policyPath, "--data-dir", dataDir]);
    const c = connectClients(s.grpcAddress);
    const fromStdin = (input: string) => spawnSync(process.execPath, [CLI, "import", "--data-dir", dataDir], { cwd: REPO_ROOT, encoding: "utf8", input, timeout: 30_000 });
    try {
      await unary(c.admin, "UpsertCustomer", { customer_id: "bob", alt_ids: ["stripe_bob"] });
      const refused: [string, RegExp][] = [
        ['{"bogus":1}\n', /^limitr-sidecar: line 1: .*key "bogus" is unknown\n$/],
        ['{"customer":{"id":"eve","altIds":["stripe_bob"]}}\n', /line 1\.customer\.alt_ids\[0\]: alt id "stripe_bob" already belongs to customer "bob"/],
        // Refused after a good record: an input this small is checked whole, so neither is imported.
        ['{"customer":{"id":"ok"}}\n\n{"meter":{"owner":"x","entitlement":"limited","periodStart":"2026-12-07T17:41:54Z","value":"oops"}}\n', /line 3\.meter\.value: must be a decimal number/],
      ];
      for (const [input, message] of refused) {
        const r = fromStdin(input);
        expect(r.status, input).toBe(1);
        expect(r.stderr, input).toMatch(message);
      }
      expect(await allowOne(c, "bob", "limited", 0.1)).toMatchObject({ allowed: true });
      expect(s.logs.filter((l) => String(l["msg"]).includes("another process"))).toEqual([]);
      expect(await unary(c.admin, "GetCustomer", { customer_id: "ok" }).catch((e: Error) => e.message)).toMatch(/NOT_FOUND|not found/i);
    } finally {
      c.close();
      await stopSidecar(s);
    }
    // Past the records checked first, stdin is imported up to a refused record.
    const many = Array.from({ length: 10_000 }, (_, i) => `{"customer":{"id":"c${i}"}}\n`).join("") + '{"customer":{"id":""}}\n';
    const r = fromStdin(many);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/line 10001\.customer\.id: is required/);
    const out = join(t.dir, "served-stdin.jsonl");
    expect(runCli(["export", "--data-dir", dataDir, "--out", out]).status).toBe(0);
    const exported = readFileSync(out, "utf8");
    expect(exported).toContain('"id":"c9999"');
    expect(exported).not.toContain('"id":"ok"');
  });

  // A file system that really fills up: mounting a tmpfs needs root (CI runs as root).
  it.skipIf(!canMount())("an import cut short by a full disk says how many records it imported, through which line, and what to do offline; run again, it finishes", () => {
    const mnt = mkdtempSync(join(tmpdir(), "limitr-import-full-"));
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=1m", "tmpfs", mnt]);
    try {
      const file = join(t.dir, "many.jsonl");
      const record = (i: number): string => JSON.stringify({ customer: { id: `c${i}`, metadata: { pad: "x".repeat(100) } } });
      // A blank line: records and lines differ by one after it.
      writeFileSync(file, `${record(0)}\n\n${Array.from({ length: 9999 }, (_, i) => record(i + 1)).join("\n")}\n`);
      const dataDir = join(mnt, "data");
      const r = runCli(["import", "--data-dir", dataDir, "--in", file]);
      expect(r.status).toBe(1);
      const m =
        /^limitr-sidecar: storage full while [^;]*; (\d+) record\(s\) imported \(through line (\d+)\), none after\. Nothing else writes .*: free space on its file system and run the import again \(records replace, so the ones already imported are written again unchanged\), or import into a new --data-dir on a larger file system\n$/.exec(
          r.stderr,
        );
      expect(m, r.stderr).not.toBeNull();
      // A running sidecar's advice: an offline import prunes no events and has no size limit.
      expect(r.stderr).not.toMatch(/prune events|size limit/);
      const imported = Number(m?.[1]);
      expect(Number(m?.[2])).toBe(imported + 1);
      expect(runCli(["export", "--data-dir", dataDir]).stdout.trim().split("\n")).toHaveLength(imported);

      execFileSync("mount", ["-o", "remount,size=16m", mnt]);
      expect(runCli(["import", "--data-dir", dataDir, "--in", file]).status).toBe(0);
      const out = join(t.dir, "many-out.jsonl");
      expect(runCli(["export", "--data-dir", dataDir, "--out", out]).status).toBe(0);
      expect(readFileSync(out, "utf8").trim().split("\n")).toHaveLength(10_000);
    } finally {
      execFileSync("umount", [mnt]);
      rmdirSync(mnt);
    }
  });

  it.skipIf(!canMount())("an import into a dir of an older format on a full disk, whose upgrade cannot be written, gives the offline advice", async () => {
    const fs = mountTmpfs("1m");
    try {
      const file = join(t.dir, "one.jsonl");
      writeFileSync(file, '{"customer":{"id":"a"}}\n');
      const dataDir = join(fs.dir, "old");
      expect(runCli(["import", "--data-dir", dataDir, "--in", file]).status).toBe(0);
      // As storage format 3 left it: no read-only open, so the import's check opens it to write,
      // and that claim upgrades it.
      const env = open({ path: join(dataDir, "limitr.mdb") });
      await env.openDB({ name: "meta" }).put("format", 3);
      await env.close();
      fillUp(fs.dir);
      const r = runCli(["import", "--data-dir", dataDir, "--in", file]);
      expect(r.status).toBe(1);
      expect(r.stderr).toMatch(/limitr-sidecar: storage full while claiming the data dir /);
      expect(r.stderr).toMatch(OFFLINE_ADVICE);
      expect(r.stderr).not.toMatch(/prune events|size limit/);
    } finally {
      fs.unmount();
    }
  });

  it.skipIf(!canMount())("an import that reads its whole input before the disk fills up prints no summary of records it did not import", () => {
    const fs = mountTmpfs("1m");
    try {
      const dataDir = join(fs.dir, "data");
      const one = join(t.dir, "one.jsonl");
      writeFileSync(one, '{"customer":{"id":"a"}}\n');
      expect(runCli(["import", "--data-dir", dataDir, "--in", one]).stderr).toMatch(/^imported 1 records in [\d.]+s\n$/);
      // Records that the reader gets in one chunk and the store takes before it waits for a
      // commit, so the whole file is read before the first commit fails.
      const file = join(t.dir, "big.jsonl");
      const record = (i: number): string => JSON.stringify({ customer: { id: `c${i}`, metadata: { pad: "x".repeat(4000) } } });
      writeFileSync(file, Array.from({ length: 10 }, (_, i) => record(i)).join("\n") + "\n");
      fillUp(fs.dir, 16);
      const r = runCli(["import", "--data-dir", dataDir, "--in", file]);
      expect(r.stderr).toMatch(/limitr-sidecar: storage full while committing [^;]*; no record imported\. /);
      expect(r.stderr).not.toMatch(/imported \d+ records/);
      expect(r.status).toBe(1);
    } finally {
      fs.unmount();
    }
  });

  it.skipIf(!canMount())("a new data dir (or a lost lock file) on a (nearly) full disk is refused before LMDB creates a file, by import, serve and export; with room, the same command runs", () => {
    const fs = mountTmpfs("1m");
    try {
      const file = join(t.dir, "one.jsonl");
      writeFileSync(file, '{"customer":{"id":"a"}}\n');
      const dataDir = join(fs.dir, "new");
      // Left that much room, LMDB's open died of SIGBUS, of SIGSEGV, or failed with EIO.
      for (const leftKiB of [0, 4, 20]) {
        const filler = fillUp(fs.dir, leftKiB);
        const r = runCli(["import", "--data-dir", dataDir, "--in", file]);
        expect(r.stderr, `${leftKiB} KiB left`).toMatch(
          new RegExp(
            `^limitr-sidecar: storage full while opening the data dir ${dataDir}: \\d+ bytes free on the file system of ${fs.dir}, ` +
              "less than the 256 KiB required before LMDB creates its files there; nothing was created\\. Nothing else writes [^ ]+: " +
              "free space on its file system and run the import again, or import into a new --data-dir on a larger file system\n$",
          ),
        );
        expect(r.status).toBe(1);
        const served = runCli(["serve", "--policy", t.policyPath, "--data-dir", dataDir, "--grpc-address", "127.0.0.1:0", "--http-address", "off"]);
        expect(served.stdout + served.stderr).toContain(`storage full while opening the data dir ${dataDir}: `);
        expect(served.status).toBe(1);
        expect(existsSync(dataDir)).toBe(false);
        rmSync(filler);
      }
      expect(runCli(["import", "--data-dir", dataDir, "--in", file]).status).toBe(0);
      expect(runCli(["export", "--data-dir", dataDir]).stdout).toContain('"id":"a"');

      // LMDB makes its lock file again where it is gone (a read-only open too), and died so.
      rmSync(join(dataDir, "limitr.mdb-lock"));
      const filler = fillUp(fs.dir);
      const exported = runCli(["export", "--data-dir", dataDir]);
      expect(exported.stderr).toMatch(new RegExp(`^limitr-sidecar: storage full while opening the data dir ${dataDir}: \\d+ bytes free on the file system of ${dataDir}, `));
      expect(exported.status).toBe(1);
      rmSync(filler);
      expect(runCli(["export", "--data-dir", dataDir]).stdout).toContain('"id":"a"');
    } finally {
      fs.unmount();
    }
  });

  it("refuses to export a dir that holds no data (a mistyped path), exit 1, creating nothing", () => {
    const typo = join(t.dir, "no-such-data");
    const out = join(t.dir, "typo-backup.jsonl");
    const r = runCli(["export", "--data-dir", typo, "--out", out]);
    expect(r.status).toBe(1);
    expect(r.stderr).toBe(`limitr-sidecar: data dir ${typo} holds no limitr-sidecar data (no limitr.mdb with a format version); nothing was read or written\n`);
    expect(existsSync(typo)).toBe(false);
    expect(existsSync(out)).toBe(false);
  });

  it("shows a live count on a terminal and a single summary line otherwise", () => {
    const file = join(t.dir, "many.jsonl");
    writeFileSync(file, Array.from({ length: 12_000 }, (_, i) => `{"customer":{"id":"c${i}"}}`).join("\n") + "\n");
    const dataDir = join(t.dir, "many");
    // Under `script` stderr is a pseudo-terminal, as in an operator's shell.
    const onTty = spawnSync("script", ["-qec", `${process.execPath} ${CLI} import --data-dir ${dataDir} --in ${file}`, "/dev/null"], {
      cwd: REPO_ROOT,
      encoding: "utf8",
      timeout: 60_000,
    });
    expect(onTty.status).toBe(0);
    expect(onTty.stdout).toContain("\rimported 5,000 records…");
    expect(onTty.stdout).toContain("\rimported 10,000 records…");
    expect(onTty.stdout).toMatch(/\rimported 12,000 records in [\d.]+s/);

    const piped = runCli(["export", "--data-dir", dataDir, "--out", join(t.dir, "many-out.jsonl")]);
    expect(piped.status).toBe(0);
    expect(piped.stderr).toMatch(/^exported 12,000 records in [\d.]+s\n$/); // no live counter in logs
  });
});

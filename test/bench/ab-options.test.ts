import { describe, expect, it } from "vitest";
import { parseAbOptions, UsageError } from "../../bench/grpc/ab-options.js";

describe("npm run bench:ab's command line", () => {
  it("defaults to this checkout as B, 16 blocks × 6 rounds of 10,000 requests and 1,000 lone Allows", () => {
    expect(parseAbOptions(["main~3"])).toEqual({ a: "main~3", b: undefined, blocks: 16, rounds: 6, requests: 10_000, calls: 1000, rpc: "Allow", items: 1 });
  });

  it("takes two builds and every option, in any order", () => {
    expect(parseAbOptions(["--rounds", "20", "v1", "--rpc", "Check", "dist-x", "--calls", "0", "--requests", "100", "--blocks", "3", "--items", "3"])).toEqual({
      a: "v1",
      b: "dist-x",
      blocks: 3,
      rounds: 20,
      requests: 100,
      calls: 0,
      rpc: "Check",
      items: 3,
    });
  });

  it.each([
    [[], /one or two builds to compare, got 0/],
    [["a", "b", "c"], /one or two builds to compare, got 3/],
    [["a", "--runs", "3"], /unknown option --runs/],
    [["a", "--rounds"], /--rounds needs a value/],
    [["a", "--rounds", "0"], /--rounds must be an integer ≥ 1, got "0"/],
    [["a", "--blocks", "-1"], /--blocks must be an integer ≥ 1, got "-1"/],
    [["a", "--rounds", "2.5"], /--rounds must be an integer ≥ 1, got "2.5"/],
    [["a", "--requests", "99"], /--requests must be an integer ≥ 100/],
    [["a", "--calls", ""], /--calls must be an integer ≥ 0, got ""/],
    [["a", "--rpc", "allow"], /--rpc must be Allow, Check or Record, got "allow"/],
    [["a", "--items", "2"], /--items must be 1 or 3, got "2"/],
  ])("refuses %j, naming what is wrong", (argv, message) => {
    expect(() => parseAbOptions(argv)).toThrow(UsageError);
    expect(() => parseAbOptions(argv)).toThrow(message);
  });
});

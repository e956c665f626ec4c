import { describe, expect, it } from "vitest";
import { ConfigError, configWarnings, parseServeConfig } from "../../src/cli/config.js";

describe("parseServeConfig", () => {
  it("applies defaults", () => {
    const c = parseServeConfig(["--policy", "p.yaml"], {});
    expect(c).toMatchObject({
      policy: "p.yaml",
      dataDir: "./data",
      grpcAddress: "127.0.0.1:50051",
      httpAddress: "127.0.0.1:8081",
      shutdownGraceMs: 10_000,
      fsync: false,
      idempotencyWindow: 86_400_000,
      policyPollInterval: 30_000,
      maxMessageBytes: 1_048_576,
    });
    expect(c.healthAddress).toBeUndefined();
    expect(c.maxDataBytes).toBeUndefined();
    expect(c.policyWatch).toBe("events");
    expect(parseServeConfig(["--policy", "p", "--policy-watch", "poll"], {}).policyWatch).toBe("poll");
    expect(() => parseServeConfig(["--policy", "p", "--policy-watch", "inotify"], {})).toThrow(/--policy-watch: /);
  });

  it("reads LIMITR_* variables, and flags win over them", () => {
    const env = { LIMITR_POLICY: "env.yaml", LIMITR_DATA_DIR: "/var/lib/limitr", LIMITR_FSYNC: "true", LIMITR_GRPC_ADDRESS: "unix:/run/limitr.sock" };
    const c = parseServeConfig(["--data-dir", "/tmp/x", "--idempotency-window", "1hr"], env);
    expect(c.policy).toBe("env.yaml");
    expect(c.dataDir).toBe("/tmp/x");
    expect(c.fsync).toBe(true);
    expect(c.grpcAddress).toBe("unix:/run/limitr.sock");
    expect(c.idempotencyWindow).toBe(3_600_000);
    expect(parseServeConfig(["--policy", "p", "--max-data-bytes", "900000000"], {}).maxDataBytes).toBe(900_000_000);
  });

  it("turns --fsync off with --no-fsync, over LIMITR_FSYNC=true", () => {
    // A shared ConfigMap may set LIMITR_FSYNC for every pod; one pod's args must be able to undo it.
    expect(parseServeConfig(["--policy", "p", "--no-fsync"], { LIMITR_FSYNC: "true" }).fsync).toBe(false);
    expect(parseServeConfig(["--policy", "p", "--fsync", "--no-fsync"], {}).fsync).toBe(false);
    expect(parseServeConfig(["--policy", "p", "--no-fsync", "--fsync"], {}).fsync).toBe(true);
    // Only booleans have a negative form: a string option has no "off" spelled that way.
    expect(() => parseServeConfig(["--policy", "p", "--no-data-dir"], {})).toThrow(/Unknown option '--no-data-dir'/);
  });

  it("takes the last of a flag given twice, so args appended by an overlay override the base's", () => {
    expect(parseServeConfig(["--policy", "a.yaml", "--data-dir", "/a", "--data-dir", "/b", "--policy", "b.yaml"], {})).toMatchObject({ policy: "b.yaml", dataDir: "/b" });
  });

  it("accepts IPv6 and port 0 and 'off' for http", () => {
    const c = parseServeConfig(["--policy", "p", "--grpc-address", "[::1]:0", "--http-address", "off", "--health-address", "0.0.0.0:50052"], {});
    expect(c.grpcAddress).toBe("[::1]:0");
    expect(c.httpAddress).toBe("off");
    expect(c.healthAddress).toBe("0.0.0.0:50052");
  });

  it("takes 'off', the documented default, for the health and metrics listeners too", () => {
    // An operator turning a listener off again (a Helm value, an env override) writes the default.
    const c = parseServeConfig(["--policy", "p", "--health-address", "off"], { LIMITR_METRICS_ADDRESS: "off" });
    expect([c.healthAddress, c.metricsAddress]).toEqual([undefined, undefined]);
    expect(parseServeConfig(["--policy", "p", "--metrics-address", "0.0.0.0:9090"], {}).metricsAddress).toBe("0.0.0.0:9090");
  });

  const bad: [string, string[], Record<string, string>, RegExp][] = [
    ["missing policy", [], {}, /--policy \(or LIMITR_POLICY\): is required/],
    ["unknown flag", ["--policy", "p", "--polcy", "x"], {}, /Unknown option '--polcy'/],
    ["bad address from a flag", ["--policy", "p", "--grpc-address", "localhost"], {}, /--grpc-address: must be HOST:PORT .* \(got "localhost"\)/],
    ["bad address from env", ["--policy", "p"], { LIMITR_HTTP_ADDRESS: "nope" }, /LIMITR_HTTP_ADDRESS: .*must be HOST:PORT/],
    ["port out of range", ["--policy", "p", "--grpc-address", "127.0.0.1:70000"], {}, /--grpc-address: must be HOST:PORT/],
    ["bad duration", ["--policy", "p", "--idempotency-window", "soon"], {}, /--idempotency-window: "soon" is not a duration/],
    ["bad number", ["--policy", "p", "--shutdown-grace-ms", "1.5"], {}, /--shutdown-grace-ms: must be a whole number/],
    ["bad boolean env", ["--policy", "p"], { LIMITR_FSYNC: "maybe" }, /LIMITR_FSYNC: must be true or false/],
    ["bad log level", ["--policy", "p", "--log-level", "loud"], {}, /--log-level: /],
  ];
  it.each(bad)("rejects %s with a message naming the option", (_name, argv, env, message) => {
    expect(() => parseServeConfig(argv, env)).toThrow(ConfigError);
    expect(() => parseServeConfig(argv, env)).toThrow(message);
  });

  // Each of these becomes a setInterval/setTimeout delay, and Node replaces a delay past 2^31-1 ms
  // by 1 ms: a value meant to be long would fire at once (or every millisecond), so it is refused.
  it("refuses --policy-poll-interval past the timer limit, which would re-read the policy every millisecond", () => {
    expect(parseServeConfig(["--policy", "p", "--policy-poll-interval", "24days"], {}).policyPollInterval).toBe(24 * 86_400_000);
    expect(() => parseServeConfig(["--policy", "p", "--policy-poll-interval", "30days"], {})).toThrow(ConfigError);
    expect(() => parseServeConfig(["--policy", "p", "--policy-poll-interval", "30days"], {})).toThrow(
      /^--policy-poll-interval: must be at most 24days \(a timer limit\) \(got "30days"\)$/,
    );
    expect(() => parseServeConfig(["--policy", "p"], { LIMITR_POLICY_POLL_INTERVAL: "2147483648" })).toThrow(
      /^LIMITR_POLICY_POLL_INTERVAL: must be at most 24days/,
    );
  });

  it("refuses --shutdown-grace-ms past the timer limit, which would cancel in-flight calls at once", () => {
    expect(parseServeConfig(["--policy", "p", "--shutdown-grace-ms", "2147483647"], {}).shutdownGraceMs).toBe(2_147_483_647);
    expect(() => parseServeConfig(["--policy", "p", "--shutdown-grace-ms", "3000000000"], {})).toThrow(ConfigError);
    expect(() => parseServeConfig(["--policy", "p", "--shutdown-grace-ms", "3000000000"], {})).toThrow(
      /^--shutdown-grace-ms: must be at most 2147483647 \(about 24.8 days, a timer limit\) \(got "3000000000"\)$/,
    );
    expect(() => parseServeConfig(["--policy", "p"], { LIMITR_SHUTDOWN_GRACE_MS: "2147483648" })).toThrow(/^LIMITR_SHUTDOWN_GRACE_MS: must be at most 2147483647/);
  });

  it("refuses --max-message-bytes past what gRPC can frame, which the HTTP port would only refuse once the store is open", () => {
    expect(parseServeConfig(["--policy", "p", "--max-message-bytes", "4294967295"], {}).maxMessageBytes).toBe(4_294_967_295);
    expect(() => parseServeConfig(["--policy", "p", "--max-message-bytes", "4294967296"], {})).toThrow(ConfigError);
    expect(() => parseServeConfig(["--policy", "p", "--max-message-bytes", "9007199254740991"], {})).toThrow(
      /^--max-message-bytes: must be at most 4294967295 \(the gRPC message size limit\) \(got "9007199254740991"\)$/,
    );
    expect(() => parseServeConfig(["--policy", "p"], { LIMITR_MAX_MESSAGE_BYTES: "99999999999" })).toThrow(/^LIMITR_MAX_MESSAGE_BYTES: must be at most 4294967295/);
  });

  it("lists every problem at once", () => {
    try {
      parseServeConfig(["--grpc-address", "x", "--shutdown-grace-ms", "abc"], {});
      expect.unreachable();
    } catch (e) {
      const lines = (e as Error).message.split("\n");
      expect(lines).toHaveLength(3);
    }
  });
});

describe("configWarnings", () => {
  const warnings = (...flags: string[]): string[] => configWarnings(parseServeConfig(["--policy", "p", ...flags], {}));

  it("warns when the events that retention keeps may take more than three quarters of the budget, and says what fits", () => {
    const [w, ...rest] = warnings("--max-data-bytes", "900000000");
    expect(rest).toEqual([]);
    expect(w).toMatch(/^--event-retention-count keeps up to 10000000 events, about 2200 MB at ~220 bytes each, more than three quarters of --max-data-bytes \(900000000\)/);
    expect(w).toMatch(/every write is refused \(RESOURCE_EXHAUSTED\)/);
    expect(w).toMatch(/Keep at most about 3000000 events \(--event-retention-count\) or raise --max-data-bytes\.$/);
    // 4,400,000 events (~970 MB) fit nowhere in 900 MB, though under 200 bytes each they would seem to.
    expect(warnings("--max-data-bytes", "900000000", "--event-retention-count", "4400000")).toHaveLength(1);
    expect(warnings("--max-data-bytes", "900000000", "--event-retention-count", "3000000")).toEqual([]);
    expect(warnings("--max-data-bytes", "20000000", "--event-retention-count", "100000")).toEqual([
      expect.stringMatching(/Keep at most about 68000 events/),
    ]);
    expect(warnings("--max-data-bytes", "100", "--event-retention-count", "1")).toEqual([
      expect.stringMatching(/Raise --max-data-bytes\.$/),
    ]);
  });

  it("says nothing without a data budget", () => {
    expect(warnings()).toEqual([]);
    expect(warnings("--event-retention-count", "1000000000")).toEqual([]);
  });
});

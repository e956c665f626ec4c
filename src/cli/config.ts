/**
 * Configuration of `serve`: flags override `LIMITR_*` environment variables, which override
 * defaults. Everything is validated at start with zod, and a wrong value is reported with the
 * flag and the variable that set it, so an operator knows which one to fix.
 */
import { parseArgs } from "node:util";
import { z } from "zod";
import { parseDurationMs } from "../policy/index.js";

/** One option: its flag, its environment variable, and what it means. */
interface OptionSpec {
  readonly flag: string;
  readonly env: string;
  readonly type: "string" | "boolean";
  readonly help: string;
}

/** Every `serve` option, keyed by config field. The README's table is written from this. */
export const SERVE_OPTIONS = {
  policy: { flag: "policy", env: "LIMITR_POLICY", type: "string", help: "policy file (YAML or JSON); its directory is watched" },
  dataDir: { flag: "data-dir", env: "LIMITR_DATA_DIR", type: "string", help: "LMDB data directory (default ./data)" },
  grpcAddress: { flag: "grpc-address", env: "LIMITR_GRPC_ADDRESS", type: "string", help: "gRPC listen address HOST:PORT or unix:/path (default 127.0.0.1:50051)" },
  httpAddress: { flag: "http-address", env: "LIMITR_HTTP_ADDRESS", type: "string", help: "HTTP (Connect/JSON, gRPC-Web, /metrics) address, or 'off' (default 127.0.0.1:8081)" },
  healthAddress: { flag: "health-address", env: "LIMITR_HEALTH_ADDRESS", type: "string", help: "extra gRPC listener serving only grpc.health.v1, for kubelet probes (default off)" },
  metricsAddress: { flag: "metrics-address", env: "LIMITR_METRICS_ADDRESS", type: "string", help: "extra HTTP listener serving only /metrics, /healthz and /readyz, for Prometheus on the pod IP (default off)" },
  shutdownGraceMs: { flag: "shutdown-grace-ms", env: "LIMITR_SHUTDOWN_GRACE_MS", type: "string", help: "how long SIGTERM waits for in-flight calls (default 10000)" },
  fsync: { flag: "fsync", env: "LIMITR_FSYNC", type: "boolean", help: "flush every commit to disk before answering: power-loss safe, slower (default off: process-crash safe)" },
  idempotencyWindow: { flag: "idempotency-window", env: "LIMITR_IDEMPOTENCY_WINDOW", type: "string", help: "how long idempotency keys are remembered (default 24hr)" },
  policyWatch: { flag: "policy-watch", env: "LIMITR_POLICY_WATCH", type: "string", help: "'events': file-system events plus the periodic re-read; 'poll': the periodic re-read (and SIGHUP) only, for volumes without inotify (default events)" },
  policyPollInterval: { flag: "policy-poll-interval", env: "LIMITR_POLICY_POLL_INTERVAL", type: "string", help: "periodic policy re-read, fallback for missed file events (default 30s)" },
  eventRetention: { flag: "event-retention", env: "LIMITR_EVENT_RETENTION", type: "string", help: "keep events this long (default 7days)" },
  eventRetentionCount: { flag: "event-retention-count", env: "LIMITR_EVENT_RETENTION_COUNT", type: "string", help: "keep at most this many events (default 10000000)" },
  maintenanceInterval: { flag: "maintenance-interval", env: "LIMITR_MAINTENANCE_INTERVAL", type: "string", help: "how often expired idempotency keys, events past retention and long-expired reservations are pruned (default 60s)" },
  maxDataBytes: { flag: "max-data-bytes", env: "LIMITR_MAX_DATA_BYTES", type: "string", help: "refuse writes (RESOURCE_EXHAUSTED) past this much LMDB data; keep it below a volume's size limit (default unlimited)" },
  maxMessageBytes: { flag: "max-message-bytes", env: "LIMITR_MAX_MESSAGE_BYTES", type: "string", help: "largest accepted request, at most 4294967295 (default 1048576)" },
  logLevel: { flag: "log-level", env: "LIMITR_LOG_LEVEL", type: "string", help: "debug, info, warn or error (default info)" },
} as const satisfies Record<string, OptionSpec>;

type OptionKey = keyof typeof SERVE_OPTIONS;

const HOST_PORT = /^(?:\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/;

const address = z.string().refine(
  (s) => (s.startsWith("unix:") && s.length > 5) || (HOST_PORT.test(s) && Number(HOST_PORT.exec(s)?.[1]) <= 65535),
  { message: "must be HOST:PORT (e.g. 127.0.0.1:50051, [::1]:0) or unix:/path/to/socket" },
);
const tcpAddress = z.string().refine((s) => HOST_PORT.test(s) && Number(HOST_PORT.exec(s)?.[1]) <= 65535, {
  message: "must be HOST:PORT (e.g. 127.0.0.1:8081)",
});

/** The largest delay setTimeout/setInterval honour (2^31-1 ms, about 24.8 days). */
const MAX_TIMER_MS = 2_147_483_647;

/** A duration in the policy's grammar (`'30s'`, `'5min'`, `'24hr'`, `'7days'`, ms) → milliseconds. */
const duration = z.string().transform((s, ctx) => {
  const parsed = parseDurationMs(s.trim());
  if (!parsed.ok) {
    ctx.addIssue({ code: "custom", message: parsed.message });
    return z.NEVER;
  }
  return parsed.ms;
});

/**
 * A duration that becomes a timer delay: Node turns a delay past 2^31-1 ms into 1 ms, so a long
 * value would fire at once (or every millisecond); refused instead of silently inverted.
 */
const timerDuration = duration.pipe(z.number().max(MAX_TIMER_MS, "must be at most 24days (a timer limit)"));

/** An extra listener, off unless given; "off" (the documented default) may be written too. */
const optionalListener = z.union([z.literal("off").transform(() => undefined), tcpAddress]).optional();

const positiveInt = z.string().regex(/^\d+$/, "must be a whole number").transform(Number).pipe(z.number().int().positive());

/**
 * The largest message gRPC and Connect can frame (a 32-bit length prefix); connect-node refuses a
 * larger `readMaxBytes` when the HTTP port is set up, which would fail start-up with the store open.
 */
const MAX_MESSAGE_BYTES_LIMIT = 4_294_967_295;

const ServeConfigSchema = z.object({
  policy: z.string({ error: "is required: the policy file to serve" }).min(1, "is required: the policy file to serve"),
  dataDir: z.string().min(1).default("./data"),
  grpcAddress: address.default("127.0.0.1:50051"),
  httpAddress: z.union([z.literal("off"), tcpAddress]).default("127.0.0.1:8081"),
  healthAddress: optionalListener,
  metricsAddress: optionalListener,
  // A setTimeout delay too: past the limit the grace period would end at once.
  shutdownGraceMs: positiveInt.pipe(z.number().max(MAX_TIMER_MS, `must be at most ${MAX_TIMER_MS} (about 24.8 days, a timer limit)`)).default(10_000),
  fsync: z.boolean().default(false),
  idempotencyWindow: duration.default(24 * 3_600_000),
  policyWatch: z.enum(["events", "poll"]).default("events"),
  policyPollInterval: timerDuration.default(30_000),
  eventRetention: duration.default(7 * 86_400_000),
  eventRetentionCount: positiveInt.default(10_000_000),
  maintenanceInterval: timerDuration.default(60_000),
  maxDataBytes: positiveInt.optional(),
  maxMessageBytes: positiveInt.pipe(z.number().max(MAX_MESSAGE_BYTES_LIMIT, `must be at most ${MAX_MESSAGE_BYTES_LIMIT} (the gRPC message size limit)`)).default(1_048_576),
  logLevel: z.enum(["debug", "info", "warn", "error"]).default("info"),
});

/** The validated configuration of `serve`. */
export type ServeConfig = z.output<typeof ServeConfigSchema>;

/** A configuration problem, said the way an operator fixes it. */
export class ConfigError extends Error {
  override readonly name = "ConfigError";
}

/**
 * Reads `serve` options from argv (after the subcommand) and the environment. Throws
 * `ConfigError` listing every problem (unknown flag, bad value) with the flag/variable named.
 */
export function parseServeConfig(argv: readonly string[], env: Readonly<Record<string, string | undefined>>): ServeConfig {
  const parseOptions: Record<string, { type: "string" | "boolean" }> = {};
  for (const spec of Object.values(SERVE_OPTIONS)) parseOptions[spec.flag] = { type: spec.type };
  let values: Record<string, string | boolean | undefined>;
  try {
    // A flag given twice counts as given last, so an overlay can append an override to a base's
    // args; `--no-fsync` turns off what LIMITR_FSYNC=true (say, a shared ConfigMap) turned on.
    ({ values } = parseArgs({ args: [...argv], options: parseOptions, strict: true, allowPositionals: false, allowNegative: true }));
  } catch (e) {
    throw new ConfigError(`${(e as Error).message}\nRun 'limitr-sidecar help' for the options.`);
  }

  const raw: Partial<Record<OptionKey, string | boolean>> = {};
  const origin: Partial<Record<OptionKey, string>> = {};
  for (const [key, spec] of Object.entries(SERVE_OPTIONS) as [OptionKey, OptionSpec][]) {
    const fromFlag = values[spec.flag];
    const fromEnv = env[spec.env];
    if (fromFlag !== undefined) {
      raw[key] = fromFlag;
      origin[key] = `--${spec.flag}`;
    } else if (fromEnv !== undefined && fromEnv !== "") {
      raw[key] = spec.type === "boolean" ? parseBool(fromEnv, spec.env) : fromEnv;
      origin[key] = spec.env;
    }
  }

  const result = ServeConfigSchema.safeParse(raw);
  if (result.success) return result.data;
  const lines = result.error.issues.map((issue) => {
    const key = String(issue.path[0] ?? "") as OptionKey;
    const spec = SERVE_OPTIONS[key];
    const where = origin[key] ?? (spec ? `--${spec.flag} (or ${spec.env})` : key);
    const got = raw[key] === undefined ? "" : ` (got ${JSON.stringify(raw[key])})`;
    return `${where}: ${issue.message}${got}`;
  });
  throw new ConfigError(lines.join("\n"));
}

/** Bytes one event takes in the log, as measured (216–228 for meter events with a `model` attribute: docs/kubernetes.md). */
export const EVENT_BYTES_ESTIMATE = 220;

/** The share of the data budget the event log may take; the rest is for keys, meters and customers. */
const EVENT_SHARE = 0.75;

/** Rounds down to two significant figures, so advice reads as 3,000,000 rather than 3,068,181. */
function roundDown2(n: number): number {
  if (n < 100) return Math.floor(n);
  const unit = 10 ** (Math.floor(Math.log10(n)) - 1);
  return Math.floor(n / unit) * unit;
}

/**
 * Settings that are each valid but together fail later, said the way an operator fixes them.
 * `serve` logs them at start and runs anyway: the combination may never be reached.
 */
export function configWarnings(config: ServeConfig): string[] {
  const warnings: string[] = [];
  const budget = config.maxDataBytes;
  const eventBytes = config.eventRetentionCount * EVENT_BYTES_ESTIMATE;
  if (budget !== undefined && eventBytes > budget * EVENT_SHARE) {
    const fits = roundDown2((budget * EVENT_SHARE) / EVENT_BYTES_ESTIMATE);
    warnings.push(
      `--event-retention-count keeps up to ${config.eventRetentionCount} events, about ${Math.round(eventBytes / 1e6)} MB ` +
        `at ~${EVENT_BYTES_ESTIMATE} bytes each, more than three quarters of --max-data-bytes (${budget}), which leaves too little ` +
        `for idempotency keys, meters and customers: once the data reaches the limit, every write is refused (RESOURCE_EXHAUSTED) ` +
        `until retention prunes. ` +
        (fits > 0
          ? `Keep at most about ${fits} events (--event-retention-count) or raise --max-data-bytes.`
          : `Raise --max-data-bytes.`),
    );
  }
  return warnings;
}

function parseBool(text: string, name: string): boolean {
  if (/^(1|true|yes|on)$/i.test(text)) return true;
  if (/^(0|false|no|off)$/i.test(text)) return false;
  throw new ConfigError(`${name}: must be true or false (got ${JSON.stringify(text)})`);
}

/** The `serve` options as help text lines. */
export function serveOptionsHelp(): string {
  return Object.values(SERVE_OPTIONS)
    .map((o) => `  --${o.type === "boolean" ? "[no-]" : ""}${o.flag}${o.type === "string" ? " VALUE" : ""}`.padEnd(32) + `${o.help} [${o.env}]`)
    .join("\n");
}

#!/usr/bin/env node
/**
 * The `limitr-sidecar` executable. Loading the CLI (grpc-js, lmdb, connect…) takes about half a
 * second, and a stop signal in that time took its default action: a pod deleted just after its
 * container started exited 143, where SPEC §7 says SIGTERM ends in a clean stop and exit 0. So
 * the stop signals are caught before anything else loads and held for the command, which takes
 * them over (`serve`) or lets them take their default action (the others).
 */
import type { EarlySignals } from "./run-cli.js";

const STOP_SIGNALS = ["SIGTERM", "SIGINT", "SIGHUP"] as const;
const held: NodeJS.Signals[] = [];
const hold = (signal: NodeJS.Signals): void => {
  held.push(signal);
};
for (const signal of STOP_SIGNALS) process.on(signal, hold);
const early: EarlySignals = {
  held,
  release: () => {
    for (const signal of STOP_SIGNALS) process.off(signal, hold);
  },
};

const { runCli } = await import("./run-cli.js");
process.exitCode = await runCli(process.argv.slice(2), early);

// Module resolution hooks of hold-cli-load.mjs (they run on node's hooks thread).
import { existsSync, writeFileSync } from "node:fs";
import process from "node:process";
import { setTimeout as sleep } from "node:timers/promises";

const gate = process.env.LIMITR_TEST_LOAD_GATE;

export async function resolve(specifier, context, next) {
  if (gate !== undefined && specifier === "./run-cli.js") {
    writeFileSync(`${gate}.reached`, "");
    while (!existsSync(gate)) await sleep(5);
  }
  return next(specifier, context);
}

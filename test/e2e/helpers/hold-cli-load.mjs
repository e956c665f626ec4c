// Preloaded into a sidecar by a test (NODE_OPTIONS=--import): holds the loading of the CLI proper
// (`./run-cli.js`, which the entry point imports once it holds the stop signals) until the file
// named by LIMITR_TEST_LOAD_GATE exists, and first creates `${gate}.reached`. A test can then send
// a signal while the sidecar is, for certain, still loading its modules.
import { register } from "node:module";

register("./hold-cli-load-hooks.mjs", import.meta.url);

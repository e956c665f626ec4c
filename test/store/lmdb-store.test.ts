import type { LmdbStore } from "../../src/store/index.js";
import { describeStoreContract } from "./store-contract.js";
import { tempStore } from "./temp-store.js";

const disposers = new Map<unknown, () => Promise<void>>();

function make(fsync: boolean) {
  return (): LmdbStore => {
    const t = tempStore({ fsync });
    disposers.set(t.store, t.dispose);
    return t.store;
  };
}

const dispose = async (s: unknown): Promise<void> => {
  await disposers.get(s)?.();
  disposers.delete(s);
};

describeStoreContract("lmdb", make(false), { dispose });
describeStoreContract("lmdb fsync", make(true), { dispose });

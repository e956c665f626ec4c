/** `npm run example:storage`: uploads in MB/GB/GiB against a free org's 1GB daily quota. */
import { createLimitrClient } from "../../src/client/index.js";
import { formatMb, upload } from "./storage.js";

const limitr = createLimitrClient({ address: process.env["LIMITR_ADDRESS"] ?? "127.0.0.1:50051" });
const org = process.argv[2] ?? `org_${Date.now().toString(36)}`;
try {
  await limitr.upsertCustomer({ id: org, type: "org", plan: "free" });
  for (const size of ["250MB", "0.5GiB", "200MB", "100MB"]) {
    const r = await upload(limitr, org, `uploader@${org}`, size);
    const used = `${formatMb(r.usedMb ?? 0)} of ${formatMb(r.limitMb ?? 0)} today`;
    console.log(`upload ${size}: ${r.accepted ? "ok" : `denied (${r.reason})`} — ${used}; resets ${r.resetsAt?.toISOString()}`);
  }
} finally {
  limitr.close();
}

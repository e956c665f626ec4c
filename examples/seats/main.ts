/** `npm run example:seats`: fills a free org's 3 seats, is refused a 4th, upgrades to pro, invites again. */
import { createLimitrClient } from "../../src/client/index.js";
import { createSeats } from "./seats.js";

const limitr = createLimitrClient({ address: process.env["LIMITR_ADDRESS"] ?? "127.0.0.1:50051" });
const seats = createSeats(limitr);
const org = process.argv[2] ?? `org_${Date.now().toString(36)}`;
try {
  await seats.createOrg(org, "free");
  for (const user of ["alice", "bob", "carol", "dave"].map((u) => `${u}@${org}`)) {
    const r = await seats.invite(org, user);
    console.log(`invite ${user}: ${r.invited ? "ok" : `denied (${r.reason})`} — seats ${r.seatsUsed}/${r.seatsLimit}`);
  }
  await seats.changePlan(org, "pro");
  console.log(`${org} upgraded to pro`);
  const r = await seats.invite(org, `dave@${org}`);
  console.log(`invite dave@${org}: ${r.invited ? "ok" : `denied (${r.reason})`} — seats ${r.seatsUsed}/${r.seatsLimit}`);
  console.log(`remove bob@${org}: seats now ${await seats.remove(org, `bob@${org}`)}`);
} finally {
  limitr.close();
}

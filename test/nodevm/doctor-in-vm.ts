/**
 * Runs inside the node VM (bundled by payload.ts): cvm doctor's local
 * checks, unchanged, on a cgroup v2 kernel with AppArmor enforced. The last
 * line printed is `CVM-DOCTOR-RESULT <json>`, for the host's test.
 */

import { runLocalChecks } from "../../src/infra/local-checks.js";

const results = {
  userns: await runLocalChecks({ choice: "userns" }),
  sysbox: await runLocalChecks({ choice: "sysbox" }),
};
console.log(`CVM-DOCTOR-RESULT ${JSON.stringify(results)}`);

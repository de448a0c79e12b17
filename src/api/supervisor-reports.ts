/**
 * The supervisor's report channel: a CVM's supervisor running in its own Pod
 * posts build-log lines, states and systemd's and Docker's status here. It is
 * not a user's route: the caller proves it is that environment's supervisor
 * with the environment's own report token (from the environment's Secret),
 * and the provider judges it. Providers without remote supervisors answer 404.
 */

import { CvmError } from "../core/errors.js";
import { supervisorReportRoute } from "../supervisor/pod-contract.js";
import { readJson } from "./input.js";
import type { ApiRoutes } from "./routes.js";
import { supervisorReportSchema } from "./schemas.js";

export function supervisorReportRoutes(routes: ApiRoutes): void {
  const { provider } = routes.deps;
  routes.add(
    {
      method: "post",
      path: supervisorReportRoute,
      summary:
        "A CVM's supervisor reports build-log lines and states (authenticated by the environment's report token)",
      tag: "supervisor",
      auth: false,
      body: supervisorReportSchema,
      response: null,
      status: 204,
      errors: [401],
    },
    async (c) => {
      if (!provider.acceptSupervisorReport) {
        throw new CvmError("NOT_FOUND", `The ${provider.name} provider takes no supervisor reports`);
      }
      const token = c.req.header("authorization")?.match(/^Bearer\s+(\S+)$/i)?.[1];
      if (!token) throw new CvmError("UNAUTHORIZED", "A supervisor report needs the environment's report token");
      const report = await readJson(c, supervisorReportSchema);
      await provider.acceptSupervisorReport(c.req.param("id") ?? "", token, report);
      return c.body(null, 204);
    },
  );
}

/** GET /environments/:ref/usage: CPU, memory and disks against the limits, read live from inside. */

import { CvmError } from "../core/errors.js";
import { parseUsage, usageProbe } from "../core/usage.js";
import { outputOf } from "../providers/read-inside.js";
import { actorOf } from "./auth.js";
import { type ApiRoutes, param } from "./routes.js";
import { type UsageReport, usageSchema } from "./workspace-schemas.js";

export function usageRoutes(routes: ApiRoutes): void {
  const { environments, provider } = routes.deps;
  routes.add(
    {
      method: "get",
      path: "/environments/:ref/usage",
      summary: "CPU, memory and disk use against the limits, from the environment's own cgroup and filesystems",
      tag: "environments",
      response: usageSchema,
      errors: [409],
    },
    async (c) => {
      const environment = await environments.find(actorOf(c), param(c, "ref"));
      if (environment.state !== "running") {
        throw new CvmError(
          "CONFLICT",
          `Environment ${environment.name} is ${environment.state}: usage is read while it runs`,
        );
      }
      const text = await outputOf((e, o) => provider.exec(e, o), environment, {
        command: ["/bin/sh", "-c", usageProbe],
        user: "0",
      });
      return c.json<UsageReport>({ ...parseUsage(text), at: new Date().toISOString() });
    },
  );
}

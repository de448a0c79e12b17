/**
 * What is inside a running environment, read live: GET /environments/:ref/usage
 * (CPU, memory and disks against the limits) and GET /environments/:ref/account
 * (whom shells, commands and SSH run as).
 */

import { CvmError } from "../core/errors.js";
import { parseUsage, usageProbe } from "../core/usage.js";
import { outputOf } from "../providers/read-inside.js";
import { actorOf } from "./auth.js";
import { type ApiRoutes, param } from "./routes.js";
import { type AccountInfo, accountSchema, type UsageReport, usageSchema } from "./workspace-schemas.js";

export function usageRoutes(routes: ApiRoutes): void {
  const { environments, provider, workspace } = routes.deps;
  const running = async (c: Parameters<typeof actorOf>[0], what: string) => {
    const environment = await environments.find(actorOf(c), param(c, "ref"));
    if (environment.state !== "running") {
      throw new CvmError(
        "CONFLICT",
        `Environment ${environment.name} is ${environment.state}: ${what} is read while it runs`,
      );
    }
    return environment;
  };
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
  routes.add(
    {
      method: "get",
      path: "/environments/:ref/account",
      summary:
        "Whom shells, commands and SSH sessions run as: the image's own user (uid 1000, else its first ordinary account), or root when it has none",
      tag: "environments",
      response: accountSchema,
      errors: [409],
    },
    async (c) => {
      const environment = await running(c, "the account");
      const { name, uid, gid, home, shell, source } = await workspace.loginAccounts.resolve(environment, "default");
      return c.json<AccountInfo>({ name, uid, gid, home, shell, source });
    },
  );
}

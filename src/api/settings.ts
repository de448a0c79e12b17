/** Manage > Admin > Infrastructure: the settings and the checks that guard the CVM toggle. */

import { invalid } from "../core/errors.js";
import { isImageReference, parseImageReference } from "../core/image-reference.js";
import { requirePermission } from "./auth.js";
import type { CheckProgress } from "./contract.js";
import { readJson, readQuery } from "./input.js";
import { ndjsonResponse } from "./ndjson.js";
import type { ApiRoutes } from "./routes.js";
import {
  checkProgressSchema,
  checksQuerySchema,
  checksSchema,
  infrastructureSettingsSchema,
  settingsUpdateSchema,
} from "./schemas.js";

/** `?images=a,b`: each an image reference, or a 400 naming the one that is not. */
function checkedImages(text: string | undefined): string[] {
  const images = (text ?? "")
    .split(",")
    .map((image) => image.trim())
    .filter(Boolean);
  const problems = images.flatMap((image) => {
    const parsed = parseImageReference(image);
    return isImageReference(parsed) ? [] : [{ field: "images", detail: `${image} ${parsed.problem}` }];
  });
  if (problems.length > 0) throw invalid(problems, "Invalid images for the checks");
  return images;
}

export function settingsRoutes(routes: ApiRoutes): void {
  const { settings, shutdown, logger } = routes.deps;
  routes.add(
    // Every signed-in user reads them: the dashboard offers CVMs only while they are enabled.
    {
      method: "get",
      path: "/settings/infrastructure",
      summary: "The infrastructure settings",
      tag: "settings",
      response: infrastructureSettingsSchema,
    },
    async (c) => c.json(await settings.get()),
  );
  routes.add(
    {
      method: "put",
      path: "/settings/infrastructure",
      summary:
        "Change any part of the infrastructure settings (site admins and managers); turning CVMs on runs the infrastructure checks first",
      tag: "settings",
      body: settingsUpdateSchema,
      response: infrastructureSettingsSchema,
      errors: [403, 409],
    },
    async (c) => {
      const actor = requirePermission(c, "settings:write", "change infrastructure settings");
      const update = await readJson(c, settingsUpdateSchema);
      return c.json(await settings.update(actor, update));
    },
  );
  routes.add(
    {
      method: "get",
      path: "/settings/infrastructure/checks",
      summary: "Run the infrastructure checks",
      tag: "settings",
      query: checksQuerySchema,
      response: checksSchema,
      errors: [400, 403],
    },
    async (c) => {
      requirePermission(c, "settings:read", "run infrastructure checks");
      const images = checkedImages(readQuery(c, checksQuerySchema).images);
      return c.json(await settings.checks(undefined, undefined, { images }));
    },
  );
  routes.add(
    {
      method: "get",
      path: "/settings/infrastructure/checks/progress",
      summary: "Run the infrastructure checks, telling each as it starts and ends (NDJSON), then the worst result",
      tag: "settings",
      query: checksQuerySchema,
      response: { ndjson: checkProgressSchema },
      errors: [400, 403],
    },
    (c) => {
      requirePermission(c, "settings:read", "run infrastructure checks");
      const images = checkedImages(readQuery(c, checksQuerySchema).images);
      return ndjsonResponse(
        async (write) => {
          const { worst } = await settings.checks(undefined, write, { images });
          write({ type: "done", worst } satisfies CheckProgress);
        },
        shutdown,
        logger,
      );
    },
  );
}

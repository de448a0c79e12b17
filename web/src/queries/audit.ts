import type { AuditFilter } from "../../../src/core/audit.js";
import { client } from "../api.js";
import { useResource } from "./resource.js";

export const auditPageSize = 25;

/** One page of the audit log, newest first; `cursor` comes from the page before. */
export const useAuditPage = (filter: AuditFilter, cursor: string | undefined) =>
  useResource(
    () => client.audit({ ...filter, limit: auditPageSize, cursor }),
    [filter.actorId, filter.action, filter.target, filter.since, filter.until, cursor],
  );

/**
 * Who may see an environment and act on it, and the reads that follow from
 * it: a member sees only their own (another's is a 404, never a 403, so ids
 * and names reveal nothing); site admins and site managers see every one.
 */

import type { Page } from "../../core/audit.js";
import type { Build } from "../../core/build.js";
import type { Environment, EnvironmentState, EnvironmentSummary } from "../../core/environment.js";
import { CvmError, notFound } from "../../core/errors.js";
import { can } from "../../core/roles.js";
import type { Store } from "../../core/store.js";
import type { Actor } from "../audit-log.js";

export interface EnvironmentQuery {
  owner?: string;
  state?: EnvironmentState;
  kind?: "cvm" | "standard";
  name?: string;
  /** Part of the name. */
  q?: string;
  limit: number;
  cursor?: string;
}

export function canSee(actor: Actor, environment: Environment): boolean {
  return environment.ownerId === actor.id || can(actor.role, "environments:all");
}

export class EnvironmentAccess {
  constructor(private readonly store: Store) {}

  /** An id, or the name of one of the caller's own environments. */
  async find(actor: Actor, ref: string): Promise<Environment> {
    const { environments } = this.store;
    const byId = await environments.get(ref);
    if (byId && canSee(actor, byId)) return byId;
    const byName = await environments.getByOwnerAndName(actor.id, ref);
    if (byName) return byName;
    throw notFound(`Environment "${ref}"`);
  }

  /** A page of the environments the actor may see, newest first, filtered in the store. */
  async list(actor: Actor, query: EnvironmentQuery): Promise<Page<EnvironmentSummary>> {
    const owner = query.owner ?? "me";
    const ownerId = owner === "me" ? actor.id : owner === "all" ? undefined : owner;
    if (ownerId !== actor.id && !can(actor.role, "environments:all")) {
      throw new CvmError("FORBIDDEN", "Only site admins and site managers may list others' environments");
    }
    const filter = {
      ownerId,
      state: query.state,
      cvm: query.kind === undefined ? undefined : query.kind === "cvm",
      name: query.name,
      nameContains: query.q,
    };
    return this.store.environments.page(filter, { limit: query.limit, cursor: query.cursor });
  }

  async builds(actor: Actor, ref: string): Promise<Build[]> {
    const environment = await this.find(actor, ref);
    return this.store.builds.listForEnvironment(environment.id);
  }

  /** The build a log request means: an id of this environment's, or its current one. */
  async buildOf(actor: Actor, ref: string, buildId?: string): Promise<Build> {
    const environment = await this.find(actor, ref);
    const id = !buildId || buildId === "latest" ? environment.buildId : buildId;
    const build = id ? await this.store.builds.get(id) : undefined;
    if (!build || build.environmentId !== environment.id) throw notFound(`Build "${buildId ?? "latest"}"`);
    return build;
  }
}

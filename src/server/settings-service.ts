/**
 * The infrastructure settings: read over the defaults, updated as a merge, and
 * guarded by the infrastructure checks when CVMs are turned on.
 */

import type { ChecksResponse, InfrastructureSettingsUpdate } from "../api/contract.js";
import { CvmError, invalid, type Validation } from "../core/errors.js";
import { defaultSettings, type InfrastructureSettings, settingsProblems } from "../core/settings.js";
import type { Store } from "../core/store.js";
import type { TrialOptions } from "../infra/cluster-checks.js";
import { type CheckContext, type OnCheckProgress, runInfrastructureChecks, worstStatus } from "../infra/index.js";
import type { Actor, AuditLog } from "./audit-log.js";
import { KeyedMutex } from "./keyed-mutex.js";

/** Stored settings over the defaults, so settings added later have a value on old installs. */
function withDefaults(stored: Partial<InfrastructureSettings> | undefined): InfrastructureSettings {
  return {
    ...defaultSettings,
    ...stored,
    limits: { ...defaultSettings.limits, ...stored?.limits },
    supervisorPrivileges: { ...defaultSettings.supervisorPrivileges, ...stored?.supervisorPrivileges },
    quotas: { ...defaultSettings.quotas, ...stored?.quotas },
    network: { ...defaultSettings.network, ...stored?.network },
  };
}

/** Problems with settings about to be written, given those they replace; empty when none. */
export type SettingsValidator = (
  after: InfrastructureSettings,
  before: InfrastructureSettings,
) => Promise<Validation[]>;

export class SettingsService {
  private readonly mutex = new KeyedMutex();
  private readonly listeners: ((settings: InfrastructureSettings) => Promise<void> | void)[] = [];
  private readonly validators: SettingsValidator[] = [];

  constructor(
    private readonly store: Store,
    private readonly audit: AuditLog,
    private readonly checkContext: Omit<CheckContext, "settings">,
  ) {}

  async get(): Promise<InfrastructureSettings> {
    return withDefaults(await this.store.settings.getInfrastructure());
  }

  /** `trial`: what this run's trial Pod asks beside the installation's (images given; a reason to make none). */
  async checks(
    settings?: InfrastructureSettings,
    onProgress?: OnCheckProgress,
    trial: Pick<TrialOptions, "images" | "skip"> = {},
  ): Promise<ChecksResponse> {
    const context = {
      ...this.checkContext,
      settings: settings ?? (await this.get()),
      trial: { ...this.checkContext.trial, ...trial },
    };
    const checks = await runInfrastructureChecks(context, onProgress);
    return { checks, worst: worstStatus(checks) };
  }

  async update(actor: Actor, update: InfrastructureSettingsUpdate): Promise<InfrastructureSettings> {
    return this.mutex.run("infrastructure", async () => {
      const { force, limits, supervisorPrivileges, quotas, network, ...rest } = update;
      const before = await this.get();
      const after: InfrastructureSettings = {
        ...before,
        ...rest,
        limits: { ...before.limits, ...limits },
        supervisorPrivileges: { ...before.supervisorPrivileges, ...supervisorPrivileges },
        quotas: { ...before.quotas, ...quotas },
        network: { ...before.network, ...network },
      };
      const problems = settingsProblems(after);
      if (problems.length === 0) {
        for (const validator of this.validators) problems.push(...(await validator(after, before)));
      }
      if (problems.length > 0) throw invalid(problems, "Invalid infrastructure settings");
      const turningOn = !before.cvmEnabled && after.cvmEnabled;
      let forced = false;
      if (turningOn) {
        // Forced, CVMs go on whatever the checks say: they are run for the audit, without waiting on a trial Pod.
        const trial = force ? { skip: "CVMs are being turned on with force, which waits on no trial Pod" } : {};
        const failing = (await this.checks(after, undefined, trial)).checks.filter((c) => c.status === "fail");
        if (failing.length > 0 && !force) {
          throw new CvmError(
            "CONFLICT",
            `CVMs stay disabled: ${failing.length} infrastructure check(s) fail (${failing.map((c) => c.id).join(", ")}); fix them, or turn CVMs on with force`,
            {
              detail: failing
                .map((c) => `${c.id}: ${c.title}: ${c.evidence}${c.remedy ? ` (${c.remedy})` : ""}`)
                .join("\n"),
              validations: failing.map((c) => ({ field: `checks.${c.id}`, detail: `${c.title}: ${c.evidence}` })),
            },
          );
        }
        forced = failing.length > 0;
      }
      await this.store.settings.putInfrastructure(after);
      await this.audit.record(
        actor,
        "settings.update",
        "settings/infrastructure",
        before,
        forced ? { ...after, forced: true } : after,
      );
      for (const listener of this.listeners) await listener(after);
      return after;
    });
  }

  /** Checks an update against what is outside the settings (the warm pools against the engine's machine). */
  addValidator(validator: SettingsValidator): void {
    this.validators.push(validator);
  }

  /**
   * Called with the settings after every change this server makes (the
   * provider applies what it enforces outside builds; the warm pools act on theirs).
   */
  onChange(listener: (settings: InfrastructureSettings) => Promise<void> | void): void {
    this.listeners.push(listener);
  }
}

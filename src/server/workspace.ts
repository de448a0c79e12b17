/**
 * What makes an environment a place to work in, beyond its build: the
 * account a shell runs as, SSH, ports, and what counts as using it. Made
 * once per server and handed to the API as one dependency.
 */

import type { Logger } from "pino";
import type { Provider } from "../core/provider.js";
import type { Store } from "../core/store.js";
import { SshGateway } from "../ssh/gateway.js";
import { loadHostKey } from "../ssh/host-key.js";
import { Activity } from "./activity.js";
import type { AuditLog } from "./audit-log.js";
import type { EnvironmentService } from "./environments/index.js";
import { IdleStopper } from "./idle-stop.js";
import { LoginAccounts } from "./login-accounts.js";
import type { OpenConnections } from "./open-connections.js";
import { PortTickets } from "./port-tickets.js";
import { PortsService } from "./ports-service.js";
import type { SettingsService } from "./settings-service.js";

export interface Workspace {
  loginAccounts: LoginAccounts;
  ssh: SshGateway;
  ports: PortsService;
  tickets: PortTickets;
  activity: Activity;
  idle: IdleStopper;
  /** Starts what runs in the background (idle stop). */
  start(): void;
  close(): Promise<void>;
}

export async function createWorkspace(options: {
  dataDir: string;
  store: Store;
  provider: Provider;
  environments: EnvironmentService;
  settings: SettingsService;
  audit: AuditLog;
  connections: OpenConnections;
  logger: Logger;
}): Promise<Workspace> {
  const { provider, audit, logger } = options;
  const loginAccounts = new LoginAccounts(provider);
  const activity = new Activity();
  const ssh = new SshGateway(await loadHostKey(options.dataDir), {
    provider,
    loginAccounts,
    audit,
    activity,
    logger: logger.child({ component: "ssh" }),
  });
  const ports = new PortsService({ ...options, activity, logger: logger.child({ component: "ports" }) });
  options.connections.judgePortsWith(ports);
  const idle = new IdleStopper({ ...options, activity, logger: logger.child({ component: "idle-stop" }) });
  return {
    loginAccounts,
    ssh,
    ports,
    tickets: await PortTickets.open(options.dataDir),
    activity,
    idle,
    start: () => idle.start(),
    close: () => idle.close(),
  };
}

/**
 * What makes an environment a place to work in, beyond its build: the
 * account a shell runs as, SSH, ports. Made once per server and handed to
 * the API as one dependency.
 */

import type { Logger } from "pino";
import type { Provider } from "../core/provider.js";
import { SshGateway } from "../ssh/gateway.js";
import { loadHostKey } from "../ssh/host-key.js";
import type { AuditLog } from "./audit-log.js";
import { LoginAccounts } from "./login-accounts.js";

export interface Workspace {
  loginAccounts: LoginAccounts;
  ssh: SshGateway;
}

export async function createWorkspace(options: {
  dataDir: string;
  provider: Provider;
  audit: AuditLog;
  logger: Logger;
}): Promise<Workspace> {
  const loginAccounts = new LoginAccounts(options.provider);
  const ssh = new SshGateway(await loadHostKey(options.dataDir), {
    provider: options.provider,
    loginAccounts,
    audit: options.audit,
    logger: options.logger.child({ component: "ssh" }),
  });
  return { loginAccounts, ssh };
}

/**
 * The `cvm` command. Each command group lives in its own file and exports
 * `register(program)`; this file only gathers them and prints errors.
 */

import { ApiError } from "../client/index.js";
import { isCvmError } from "../core/errors.js";
import * as admin from "./admin.js";
import * as auth from "./auth.js";
import * as cluster from "./cluster.js";
import { CvmCommand } from "./command.js";
import * as configSsh from "./config-ssh.js";
import * as doctor from "./doctor.js";
import * as env from "./env.js";
import * as envWorkspace from "./env-workspace.js";
import * as image from "./image.js";
import * as portForward from "./port-forward.js";
import * as server from "./server.js";
import * as ssh from "./ssh.js";
import * as supervisor from "./supervisor.js";
import * as users from "./users.js";
import * as version from "./version.js";

const program = new CvmCommand("cvm")
  .description("cvm: developer environments and container-based virtual machines")
  .option("-V, --version", "the CLI's version and the server's")
  .enablePositionalOptions()
  .action((options: { version?: boolean }) => (options.version ? version.printVersions() : program.help()));

for (const group of [
  auth,
  users,
  admin,
  env,
  envWorkspace,
  ssh,
  configSsh,
  portForward,
  server,
  image,
  doctor,
  cluster,
  supervisor,
  version,
]) {
  group.register(program);
}

function report(error: unknown): void {
  const body =
    error instanceof ApiError
      ? error.body
      : isCvmError(error)
        ? error.toBody()
        : { message: String((error as Error)?.message ?? error) };
  process.stderr.write(`cvm: ${body.message}\n`);
  if (body.detail) process.stderr.write(`  ${body.detail}\n`);
  for (const validation of body.validations ?? []) {
    if (!body.message.includes(validation.detail))
      process.stderr.write(`  ${validation.field}: ${validation.detail}\n`);
  }
}

try {
  await program.parseAsync(process.argv);
} catch (error) {
  report(error);
  process.exitCode = 1;
}

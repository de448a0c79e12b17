/** `cvm image check REF`: what an image will be as a CVM, before anyone waits for a build. */

import type { Command } from "commander";
import { dockerHostOf } from "../docker/engine-address.js";
import type { ImageCheck } from "../supervisor/image-check.js";
import type { InitPath } from "../supervisor/init-path.js";
import { printFields, printJson } from "./output.js";

function describe(path: InitPath): string {
  return path.found ? path.chain.join(" -> ") : `absent: ${path.reason}`;
}

function print(check: ImageCheck): void {
  const user = check.defaultUser;
  printFields([
    ["image", check.image],
    ["/sbin/init", describe(check.init)],
    ["systemd", check.systemd.found ? `present at ${check.systemd.target}` : "absent"],
    ["init is systemd", check.initIsSystemd ? "yes" : "no"],
    ["dockerd", check.dockerd.found ? `present at ${check.dockerd.target}` : "absent"],
    ["docker.service", `${check.dockerService.state} (${check.dockerService.evidence})`],
    ["default user", `${user.name}${user.uid === undefined ? "" : ` (uid ${user.uid})`}, from ${user.source}`],
    ["verdict", check.verdict.summary],
  ]);
}

export function register(program: Command): void {
  const image = program.command("image").description("environment images");
  image
    .command("check")
    .description("tell what an image will be as a CVM: /sbin/init, systemd, docker.service, default user")
    .argument("<ref>", "image reference, pulled into the engine when not already there")
    .option("--json", "print the check as JSON")
    .option("--docker-host <host>", "engine to read the image with (default: DOCKER_HOST or the local socket)")
    .action(async (ref: string, options: { json?: boolean; dockerHost?: string }) => {
      // The engine client and the image reader load only for this command.
      const [{ dockerClient }, { checkImage }] = await Promise.all([
        import("../docker/engine-client.js"),
        import("../supervisor/image-check.js"),
      ]);
      const check = await checkImage(dockerClient(dockerHostOf(options.dockerHost)), ref);
      if (options.json) printJson(check);
      else print(check);
    });
}

/**
 * `cvm supervisor`: the command a CVM's Pod runs (never people). The program
 * is the supervisor's Pod agent (src/supervisor/pod-agent.ts); this file only
 * names its commands, and loads the agent when one runs.
 */

import type { Command } from "commander";
import type { ExecFlags } from "../supervisor/pod-agent.js";
import { namedValueFlag } from "./arguments.js";

export function register(program: Command): void {
  const supervisor = program
    .command("supervisor")
    .description("run inside a CVM's Pod: supervise its environment and report to the server (not for people)");
  supervisor
    .command("run", { isDefault: true })
    .description("build the environment, report, keep it running until the Pod is deleted")
    .action(async () => (await import("../supervisor/pod-agent.js")).runPodAgent());
  supervisor
    .command("probe")
    .description("the doctor's trial: start the engine, ask for the runtime and each image's manifest (not for people)")
    .argument("[images...]", "the images whose registries to ask")
    .action(async (images: string[]) => {
      await (await import("../supervisor/image-probe.js")).runImageProbe(images);
    });
  supervisor
    .command("exec")
    .description("run a command in the environment this Pod supervises")
    .option("--tty", "allocate a terminal")
    .option("--framed", "stdin carries the server's frames (input, resize, end), not bytes")
    .option("--cols <n>", "the terminal's width", Number)
    .option("--rows <n>", "the terminal's height", Number)
    .option("--user <uid>", "run as this account of the environment's (a uid or a name; default root)")
    .option("--cwd <dir>", "start in this directory")
    .option("--env <name=value>", "a variable for the command (repeatable)", namedValueFlag("--env"), [])
    .argument("[command...]", "the command (default: a login shell)")
    .action(async (command: string[], flags: ExecFlags) =>
      (await import("../supervisor/pod-agent.js")).execInPod(command, flags),
    );
}

/**
 * The `cvm` command. Each command group lives in its own file and exports
 * `register(program)`; this file only gathers them.
 */

import { Command } from "commander";

const program = new Command("cvm")
  .description("cvm: developer environments and container-based virtual machines")
  .showHelpAfterError()
  .enablePositionalOptions();

// Command groups register themselves here, one line each.

await program.parseAsync(process.argv);

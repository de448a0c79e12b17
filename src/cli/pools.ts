/** `cvm admin pool list|set|remove`: the warm pools of Manage > Admin > Infrastructure, from a terminal. */

import type { Command } from "commander";
import type { PoolsStatus } from "../api/contract.js";
import { configuredClient } from "./config.js";
import { age, printJson, printTable } from "./output.js";

interface SizeOptions {
  cpu?: number;
  memory?: number;
  disk?: number;
  json?: boolean;
}

function print(status: PoolsStatus, json?: boolean): void {
  if (json) {
    printJson(status);
    return;
  }
  if (!status.supported) process.stdout.write("this server's provider keeps no warm pools\n");
  if (status.pools.length === 0) {
    process.stdout.write("no warm pools (cvm admin pool set IMAGE --count N)\n");
  } else {
    printTable(
      ["IMAGE", "CPU", "MEMORY", "DISK", "COUNT", "READY", "FILLING", "FAILED"],
      status.pools.map((p) => [
        p.image,
        p.cpu,
        `${p.memoryGiB} GiB`,
        `${p.diskGiB} GiB`,
        p.count,
        p.ready,
        p.filling,
        p.failed,
      ]),
    );
  }
  const { held, capacity } = status;
  const of = capacity ? ` (the engine's machine has ${capacity.cpu} CPUs, ${capacity.memoryGiB} GiB memory)` : "";
  if (held.cvms > 0) {
    process.stdout.write(
      `\n${held.cvms === 1 ? "1 warm CVM holds" : `${held.cvms} warm CVMs hold`} ${held.cpu} ${held.cpu === 1 ? "CPU" : "CPUs"}, ${held.memoryGiB} GiB memory, ${held.diskGiB} GiB disk${of}\n`,
    );
  }
}

export function register(admin: Command): void {
  const pool = admin.command("pool").description("warm pools: booted CVMs kept ready per image and size");
  pool
    .command("list", { isDefault: true })
    .description("each pool, its members ready, being built and failed, and what they hold")
    .option("--members", "list every member too")
    .option("--json")
    .action(async (options: { members?: boolean; json?: boolean }) => {
      const status = await configuredClient().pools();
      print(status, options.json);
      if (options.members && !options.json && status.members.length > 0) {
        process.stdout.write("\n");
        printTable(
          ["MEMBER", "POOL", "STATE", "AGE", "REASON"],
          status.members.map((m) => [m.id, m.pool, m.state, age(m.createdAt), m.reason]),
        );
      }
    });
  const sizes = (command: Command) =>
    command
      .option("--cpu <n>", "CPUs of each (a create may ask for fewer); default: a create's default", Number)
      .option("--memory <GiB>", "memory of each (a create may ask for less); default: a create's default", Number)
      .option("--disk <GiB>", "disk of each (a create must ask for this); default: a create's default", Number)
      .option("--json");
  sizes(
    pool
      .command("set <image>")
      .description("keep COUNT booted CVMs of the image and size ready; a CVM create that fits claims one")
      .requiredOption("--count <n>", "how many to keep ready (0 removes the pool)", Number),
  ).action(async (image: string, options: SizeOptions & { count: number }) => {
    const status = await configuredClient().setPool({
      image,
      count: options.count,
      cpu: options.cpu,
      memoryGiB: options.memory,
      diskGiB: options.disk,
    });
    print(status, options.json);
  });
  sizes(
    pool.command("remove <image>").description("remove the pool of the image and size; its CVMs are removed"),
  ).action(async (image: string, options: SizeOptions) => {
    const status = await configuredClient().setPool({
      image,
      count: 0,
      cpu: options.cpu,
      memoryGiB: options.memory,
      diskGiB: options.disk,
    });
    print(status, options.json);
  });
}

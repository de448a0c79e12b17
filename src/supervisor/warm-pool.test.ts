/** The claim's pieces that need no CVM: the engine's hosts file renamed, and the claim script run by a real shell. */

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";
import { claimScript, renameInHosts } from "./warm-pool.js";

const run = promisify(execFile);

test("the engine's /etc/hosts: the pool's name becomes the environment's, nothing else changes", () => {
  const hosts = [
    "127.0.0.1\tlocalhost",
    "::1\tlocalhost ip6-localhost ip6-loopback",
    "# pool-1234abcd is mentioned in a comment",
    "10.213.215.2\tpool-1234abcd",
    "10.213.215.9\tpool-1234abcdX other",
  ].join("\n");
  assert.equal(
    renameInHosts(hosts, "pool-1234abcd", "dev"),
    [
      "127.0.0.1\tlocalhost",
      "::1\tlocalhost ip6-localhost ip6-loopback",
      "# pool-1234abcd is mentioned in a comment",
      "10.213.215.2\tdev",
      "10.213.215.9\tpool-1234abcdX other",
    ].join("\n"),
  );
});

/**
 * The claim script, run by a real shell against stand-ins for hostname,
 * systemctl and kill that record what they were asked, in a root of its own:
 * the order matters (the machine id before journald's restart, the pool's
 * journal gone after it, PID 1 re-executed last, after the report).
 */
test("the claim script: hostname, the machine id, journald restarted and its entry read back before the report, the old journal removed, PID 1 last", async () => {
  const root = await mkdtemp(join(tmpdir(), "cvm-claim-"));
  try {
    const bin = join(root, "bin");
    await mkdir(bin);
    const calls = join(root, "calls");
    const journal = join(root, "journal");
    for (const name of ["hostname", "systemctl"]) {
      await writeFile(join(bin, name), `#!/bin/sh\necho "${name} $*" >> ${calls}\n`);
      await chmod(join(bin, name), 0o755);
    }
    // A journal that has the entry only once journald was restarted and the entry logged after it.
    await writeFile(join(bin, "logger"), `#!/bin/sh\necho "logger $*" >> ${calls}\necho "$*" >> ${journal}\n`);
    await writeFile(
      join(bin, "journalctl"),
      `#!/bin/sh\necho "journalctl $*" >> ${calls}\ngrep -q "try-restart systemd-journald" ${calls} && cat ${journal} 2>/dev/null; true\n`,
    );
    for (const name of ["logger", "journalctl"]) await chmod(join(bin, name), 0o755);
    const script = claimScript()
      .replaceAll("/run/systemd/system", join(root, "run/systemd/system"))
      .replaceAll("/etc/machine-id", join(root, "etc/machine-id"))
      .replaceAll("/var/log/journal", join(root, "var/log/journal"))
      .replaceAll("/run/log/journal", join(root, "run/log/journal"));
    for (const dir of [
      "run/systemd/system",
      "etc",
      "var/log/journal/oldid",
      "var/log/journal/keep",
      "run/log/journal/oldid",
    ]) {
      await mkdir(join(root, dir), { recursive: true });
    }
    await writeFile(join(root, "etc/machine-id"), "oldid\n");
    // kill is the shell's own: a function stands in for it.
    const killer = `kill() { echo "kill $*" >> ${calls}; }\n`;
    const { stdout } = await run("sh", ["-c", killer + script, "claim", "dev", "newid"], {
      env: { PATH: `${bin}:/usr/bin:/bin` },
    });
    assert.match(stdout, /^journal=written$/m, "the claim's own entry was read back");

    assert.equal(await readFile(join(root, "etc/machine-id"), "utf8"), "newid\n");
    // logind's restart and the old journal's removal go on in the background.
    for (let i = 0; i < 200 && (await readdir(join(root, "var/log/journal"))).includes("oldid"); i++) await sleep(10);
    const recorded = (await readFile(calls, "utf8")).trim().split("\n");
    // What the report asks (the state, failed units, Docker's units) is readiness.ts's, tested there.
    const asked = recorded.filter(
      (line) => !line.startsWith("systemctl list-units") && !line.startsWith("systemctl show") && !line.includes("is-"),
    );
    const logind = "systemctl try-restart systemd-logind.service";
    assert.deepEqual(
      asked.filter((line) => line !== logind),
      [
        "hostname dev",
        "systemctl try-restart systemd-journald.service",
        "logger -t cvm-claim claimed as dev",
        "journalctl -q --no-pager -o cat -t cvm-claim _HOSTNAME=dev",
        "kill -TERM 1",
      ],
    );
    assert.ok(asked.includes(logind));
    const gone = async (dir: string) =>
      readFile(join(root, dir, "x")).then(
        () => false,
        (error: NodeJS.ErrnoException) => error.code === "ENOENT",
      );
    assert.ok(await gone("var/log/journal/oldid"));
    assert.ok(await gone("run/log/journal/oldid"));
    assert.deepEqual(
      (await run("ls", [join(root, "var/log/journal")])).stdout.trim().split("\n"),
      ["keep"],
      "only the old id's journal goes",
    );
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

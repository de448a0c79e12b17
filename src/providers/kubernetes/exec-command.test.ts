/**
 * The command lines a Pod's exec runs: the supervisor's flags for a CVM, and
 * for a standard environment the shell prologue, run here with this
 * machine's sh, env and setpriv as a container's would run it.
 */

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { test } from "node:test";
import { promisify } from "node:util";
import { containerExecCommand, supervisorExecCommand } from "./exec-command.js";

const run = promisify(execFile);

async function output(command: string[]): Promise<{ stdout: string; stderr: string; code: number }> {
  const [file, ...args] = command;
  try {
    const { stdout, stderr } = await run(file, args);
    return { stdout, stderr, code: 0 };
  } catch (error) {
    const failed = error as { stdout: string; stderr: string; code: number };
    return { stdout: failed.stdout, stderr: failed.stderr, code: failed.code };
  }
}

test("a CVM's exec hands the account, directory and variables to cvm supervisor exec", () => {
  assert.deepEqual(
    supervisorExecCommand({
      command: ["bash", "-l"],
      tty: true,
      cols: 100,
      rows: 30,
      user: "1000",
      cwd: "/home/dev",
      env: { SSH_AUTH_SOCK: "/tmp/cvm-ssh-x/agent.sock", A: "b=c d" },
    }),
    [
      "cvm",
      "supervisor",
      "exec",
      "--framed",
      "--tty",
      "--cols",
      "100",
      "--rows",
      "30",
      "--user",
      "1000",
      "--cwd",
      "/home/dev",
      "--env",
      "SSH_AUTH_SOCK=/tmp/cvm-ssh-x/agent.sock",
      "--env",
      "A=b=c d",
      "--",
      "bash",
      "-l",
    ],
  );
  assert.deepEqual(supervisorExecCommand({ command: ["true"], tty: false }), [
    "cvm",
    "supervisor",
    "exec",
    "--framed",
    "--",
    "true",
  ]);
});

test("a standard environment's exec runs the command itself when nothing more is asked", () => {
  assert.deepEqual(containerExecCommand({ command: ["cat", "/etc/passwd"], tty: false }), ["cat", "/etc/passwd"]);
});

test("the prologue changes directory and sets the variables; a missing directory is /", async () => {
  const result = await output(
    containerExecCommand({
      command: ["sh", "-c", 'pwd; echo "$GREETING"; echo "$TERM"'],
      tty: true,
      cwd: "/usr",
      env: { GREETING: "hello there" },
    }),
  );
  assert.equal(result.stdout, "/usr\nhello there\nxterm-256color\n", result.stderr);
  const missing = await output(containerExecCommand({ command: ["pwd"], tty: false, cwd: "/no/such/dir" }));
  assert.equal(missing.stdout, "/\n");
});

test("run as root, the prologue becomes the account asked for, with its groups", {
  skip: process.getuid?.() !== 0 && "becoming another account needs root",
}, async () => {
  const result = await output(containerExecCommand({ command: ["id"], tty: false, user: "65534" }));
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stdout, /^uid=65534\(\w+\) gid=65534\(\w+\) groups=65534\(\w+\)\n$/);
  const unknown = await output(containerExecCommand({ command: ["id"], tty: false, user: "4242" }));
  assert.equal(unknown.code, 126);
  assert.match(unknown.stderr, /no account with uid 4242/);
});

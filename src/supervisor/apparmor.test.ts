import assert from "node:assert/strict";
import { execFile, execFileSync } from "node:child_process";
import { test } from "node:test";
import { apparmorProfile } from "./apparmor.js";

const parser = (() => {
  try {
    return execFileSync("sh", ["-c", "command -v apparmor_parser"]).toString().trim() || undefined;
  } catch {
    return undefined;
  }
})();

test("the CVM profile allows the inner dockerd's mounts and keeps Docker's denials of the node's interfaces", () => {
  const profile = apparmorProfile();
  assert.match(profile, /^profile cvm-default flags=\(attach_disconnected,mediate_deleted\) \{$/m);
  for (const rule of ["mount,", "umount,", "pivot_root,"]) assert.ok(profile.includes(`  ${rule}`), rule);
  for (const denied of ["@{PROC}/sysrq-trigger rwklx", "@{PROC}/kcore rwklx", "/sys/firmware/** rwklx"]) {
    assert.ok(profile.includes(`deny ${denied},`), denied);
  }
});

test("apparmor_parser accepts the profile", {
  skip: parser ? false : "apparmor_parser is not installed here",
}, async () => {
  const child = execFile(parser as string, ["--skip-kernel-load", "--skip-cache", "-Q"]);
  const exited = new Promise<number | null>((resolve) => child.on("exit", resolve));
  let stderr = "";
  child.stderr?.on("data", (chunk) => {
    stderr += chunk;
  });
  child.stdin?.end(apparmorProfile());
  assert.equal(await exited, 0, stderr);
});

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
  for (const denied of [
    "@{PROC}/sysrq-trigger rwklx",
    "@{PROC}/kcore rwklx",
    "/sys/firmware/** rwklx",
    "/.cvm/sysfs/firmware/** rwklx",
  ]) {
    assert.ok(profile.includes(`deny ${denied},`), denied);
  }
});

/** AppArmor's glob as a regular expression: ** any, * and ? within a path component, [^x], {a,b}. */
function globRegExp(glob: string): RegExp {
  let source = "";
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i];
    if (c === "*" && glob[i + 1] === "*") {
      source += ".*";
      i++;
    } else if (c === "*") source += "[^/]*";
    else if (c === "?") source += "[^/]";
    else if (c === "{") source += "(?:";
    else if (c === "}") source += ")";
    else if (c === "," && source.includes("(?:")) source += "|";
    else if (c === "[") {
      const close = glob.indexOf("]", i);
      source += glob.slice(i, close + 1);
      i = close;
    } else source += c.replace(/[.+()$|/^]/g, "\\$&");
  }
  return new RegExp(`^${source}$`);
}

/** Whether one of the profile's `deny @{PROC}/sys/... w,` lines matches `path`. */
function writeDenied(profile: string, path: string): boolean {
  return [...profile.matchAll(/^\s*deny @\{PROC\}(\/sys\/\S+) w,$/gm)].some((m) =>
    globRegExp(`/proc${m[1]}`).test(path),
  );
}

test("writes under /proc/sys: the node's denied; the CVM's own network settings, shm limits and binfmt_misc allowed", () => {
  const profile = apparmorProfile();
  for (const path of [
    "/proc/sys/vm/swappiness",
    "/proc/sys/kernel/printk",
    "/proc/sys/fs/file-max",
    "/proc/sys/fs/binfmt_miscx",
    "/proc/sys/fs/bin/x",
    "/proc/sys/user/max_user_namespaces",
  ]) {
    assert.ok(writeDenied(profile, path), `${path} is writable`);
  }
  for (const path of [
    "/proc/sys/net/ipv4/ip_forward",
    "/proc/sys/kernel/shmmax",
    "/proc/sys/fs/binfmt_misc/register",
    "/proc/sys/fs/binfmt_misc/qemu-aarch64",
  ]) {
    assert.ok(!writeDenied(profile, path), `${path} is denied`);
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

/**
 * The AppArmor profile of a CVM, for nodes that enforce AppArmor (Ubuntu, and
 * Debian's cloud kernels). Docker's default profile denies every mount, and an
 * inner dockerd must mount overlay filesystems, proc, sysfs, tmpfs and cgroups
 * for its containers; this profile is Docker's default with mount, umount and
 * pivot_root allowed, keeping its denials of the node's kernel interfaces
 * (/proc/sysrq-trigger, /proc/kcore, /sys/firmware, kernel security fs).
 * Where AppArmor is not enabled, no profile is set and the build log says so.
 */

import { execFile } from "node:child_process";
import { readFile } from "node:fs/promises";
import { promisify } from "node:util";

const run = promisify(execFile);

export const apparmorProfileName = "cvm-default";

export function apparmorProfile(name = apparmorProfileName): string {
  return `#include <tunables/global>

profile ${name} flags=(attach_disconnected,mediate_deleted) {
  #include <abstractions/base>

  network,
  capability,
  file,
  umount,
  # The inner dockerd mounts overlay, proc, sysfs, tmpfs, mqueue and cgroup filesystems and binds.
  mount,
  pivot_root,

  signal (receive) peer=unconfined,
  signal (send,receive) peer=${name},
  ptrace (trace,read,tracedby,readby) peer=${name},

  deny @{PROC}/* w,
  deny @{PROC}/{[^1-9],[^1-9][^0-9],[^1-9s][^0-9y][^0-9s],[^1-9][^0-9][^0-9][^0-9/]*}/** w,
  # /proc/sys/net is per network namespace: a nested container's runtime sets its own net sysctls there.
  # /proc/sys/fs/binfmt_misc is the CVM's own where the kernel has one per user namespace (6.7 and newer).
  deny @{PROC}/sys/[^fkn]** w,
  deny @{PROC}/sys/f[^s]** w,
  deny @{PROC}/sys/fs[^/]** w,
  deny @{PROC}/sys/fs/[^b]** w,
  deny @{PROC}/sys/fs/b[^i]** w,
  deny @{PROC}/sys/fs/bi[^n]** w,
  deny @{PROC}/sys/fs/bin[^f]** w,
  deny @{PROC}/sys/fs/binf[^m]** w,
  deny @{PROC}/sys/fs/binfm[^t]** w,
  deny @{PROC}/sys/fs/binfmt[^_]** w,
  deny @{PROC}/sys/fs/binfmt_[^m]** w,
  deny @{PROC}/sys/fs/binfmt_m[^i]** w,
  deny @{PROC}/sys/fs/binfmt_mi[^s]** w,
  deny @{PROC}/sys/fs/binfmt_mis[^c]** w,
  deny @{PROC}/sys/fs/binfmt_misc?** w,
  deny @{PROC}/sys/n[^e]** w,
  deny @{PROC}/sys/ne[^t]** w,
  deny @{PROC}/sys/net[^/]** w,
  deny @{PROC}/sys/kernel/{?,??,[^s][^h][^m]**} w,
  deny @{PROC}/sysrq-trigger rwklx,
  deny @{PROC}/kcore rwklx,
  deny /sys/[^f]*/** wklx,
  deny /sys/f[^s]*/** wklx,
  deny /sys/fs/[^c]*/** wklx,
  deny /sys/fs/c[^g]*/** wklx,
  deny /sys/fs/cg[^r]*/** wklx,
  deny /sys/firmware/** rwklx,
  deny /sys/kernel/security/** rwklx,
  # The engine's reference sysfs (sysfs-reference.ts), as /sys.
  deny /.cvm/sysfs/** wklx,
  deny /.cvm/sysfs/firmware/** rwklx,
}
`;
}

export async function apparmorEnabled(): Promise<boolean> {
  const enabled = await readFile("/sys/module/apparmor/parameters/enabled", "utf8").catch(() => "N");
  return enabled.trim().startsWith("Y");
}

export type ApparmorChoice = { profile: string; note: string } | { profile: undefined; note: string };

/** Loads (or reloads) the profile when the node enforces AppArmor; says what was chosen either way. */
export async function ensureApparmorProfile(): Promise<ApparmorChoice> {
  if (!(await apparmorEnabled())) {
    return { profile: undefined, note: "AppArmor is not enabled on this node: no AppArmor profile set" };
  }
  await new Promise<void>((resolve, reject) => {
    const child = execFile("apparmor_parser", ["--replace"], (error) => (error ? reject(error) : resolve()));
    child.stdin?.end(apparmorProfile());
  }).catch(async (error) => {
    const { stdout } = await run("sh", ["-c", "command -v apparmor_parser || true"]);
    const detail = stdout.trim() ? (error as Error).message : "apparmor_parser is not installed (apt install apparmor)";
    throw new Error(`AppArmor is enabled but the ${apparmorProfileName} profile could not be loaded: ${detail}`);
  });
  return { profile: apparmorProfileName, note: `AppArmor enforced: profile ${apparmorProfileName} loaded` };
}

/**
 * Multi-arch in a CVM: running arm64 (or any foreign) binaries and images
 * through qemu-user, which the kernel finds through binfmt_misc. Before Linux
 * 6.7 binfmt_misc had one table for the whole node, which only the node's
 * root may change; since 6.7 each user namespace may mount its own (commit
 * "binfmt_misc: enable sandboxed mounts"), so a CVM registers handlers that
 * reach only itself and what runs in it. The start gate mounts it at release
 * (gate/cvm-gate.c); this module says what that means, for the build log and
 * `cvm doctor` alike.
 */

import { atLeast, parseVersion, version } from "../infra/versions.js";

export const binfmtPerUserNamespaceSince = version("6.7");

export function binfmtPerUserNamespace(kernelRelease: string): boolean {
  const parsed = parseVersion(kernelRelease);
  return parsed !== undefined && atLeast(parsed, binfmtPerUserNamespaceSince);
}

/** What a CVM can do about foreign architectures, given whether its gate could mount binfmt_misc. */
export function binfmtNote(mountedInCvm: boolean, kernelRelease: string): string {
  if (mountedInCvm) {
    return `the CVM has a binfmt_misc of its own (kernel ${kernelRelease}): qemu-user handlers it registers reach only the CVM`;
  }
  if (binfmtPerUserNamespace(kernelRelease)) {
    return `unavailable: kernel ${kernelRelease} should give the CVM a binfmt_misc of its own, but mounting it failed`;
  }
  return `unavailable: kernel ${kernelRelease} has one binfmt_misc for the whole node (a binfmt_misc per user namespace needs 6.7 or newer), so a CVM cannot register qemu-user handlers; only handlers the node's root registers apply`;
}

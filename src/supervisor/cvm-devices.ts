/**
 * FUSE and TUN for CVMs: sshfs, rclone, fuse-overlayfs and rootless Podman
 * need /dev/fuse; VPN clients and userspace networking need /dev/net/tun.
 * Both are safe to hand to a user namespace: the kernel lets one mount FUSE
 * filesystems and create TUN interfaces only in namespaces it owns.
 *
 * The node's own nodes are not passed through: the engine binds them as they
 * are, owned by the node's root (and 0600 on nodes without udev), which is
 * nobody inside a CVM. cvm makes its own nodes with the same numbers, owned by
 * the CVM's root and open to everyone as on a Debian host, and the container
 * gets them by bind mount plus a device cgroup rule for exactly that device.
 * An admin turns each off in the infrastructure settings.
 */

import { execFile } from "node:child_process";
import { chown, mkdir, open, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

export type CvmDevice = "fuse" | "tun";

/** The node paths of cvm's own device nodes, for the devices a CVM gets. */
export type CvmDeviceNodes = Partial<Record<CvmDevice, string>>;

/** Fixed by the kernel's ABI (misc devices, major 10). */
export const deviceNumbers: Record<CvmDevice, { node: string; major: number; minor: number; what: string }> = {
  fuse: { node: "/dev/fuse", major: 10, minor: 229, what: "FUSE" },
  tun: { node: "/dev/net/tun", major: 10, minor: 200, what: "TUN" },
};

export interface DeviceChoice {
  nodes: CvmDeviceNodes;
  /** One line per device for the build log: given, turned off, or why unavailable. */
  notes: string[];
}

function majorMinor(rdev: number): { major: number; minor: number } {
  return { major: (rdev >> 8) & 0xfff, minor: (rdev & 0xff) | ((rdev >> 12) & 0xfff00) };
}

/** Why the node cannot give this device, or undefined when it can. */
async function unavailable(device: CvmDevice): Promise<string | undefined> {
  const { node, major, minor, what } = deviceNumbers[device];
  const info = await stat(node).catch(() => undefined);
  if (!info) {
    return `there is no ${node} here (the node's kernel lacks ${what} or its module is not loaded; in a Pod, the supervisor is not privileged)`;
  }
  const numbers = majorMinor(info.rdev);
  if (!info.isCharacterDevice() || numbers.major !== major || numbers.minor !== minor) {
    return `${node} here is not the ${what} device (${numbers.major}:${numbers.minor})`;
  }
  return undefined;
}

/**
 * Makes (or keeps) cvm's node for each wanted device under `dir`, owned by
 * the remapped root, and proves it opens here: in a Pod without privileged
 * mode the device cgroup refuses it, and so it would refuse the CVM.
 */
export async function ensureDeviceNodes(
  dir: string,
  root: { uid: number; gid: number },
  wanted: Record<CvmDevice, boolean>,
): Promise<DeviceChoice> {
  const nodes: CvmDeviceNodes = {};
  const notes: string[] = [];
  for (const device of Object.keys(deviceNumbers) as CvmDevice[]) {
    const { node, major, minor, what } = deviceNumbers[device];
    if (!wanted[device]) {
      notes.push(`${what}: turned off in the infrastructure settings: no ${node}`);
      continue;
    }
    const why = await unavailable(device);
    if (why) {
      notes.push(`${what} unavailable: ${why}`);
      continue;
    }
    const path = join(dir, device);
    try {
      await mkdir(dir, { recursive: true, mode: 0o711 });
      const present = await stat(path).catch(() => undefined);
      const numbers = present ? majorMinor(present.rdev) : undefined;
      if (!present?.isCharacterDevice() || numbers?.major !== major || numbers?.minor !== minor) {
        await rm(path, { force: true });
        await run("mknod", ["-m", "0666", path, "c", String(major), String(minor)]);
      }
      await chown(path, root.uid, root.gid);
      await (await open(path, "r+")).close();
      nodes[device] = path;
      notes.push(`${what}: ${node} (cvm's own node, owned by the CVM's root)`);
    } catch (error) {
      notes.push(
        `${what} unavailable: ${node} cannot be made or opened here: ${(error as Error).message.split("\n")[0]}`,
      );
    }
  }
  return { nodes, notes };
}

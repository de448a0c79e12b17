/**
 * Whether a CVM's root filesystem can be limited on this node. Docker
 * enforces a size on a container's writable layer only with overlay2 on xfs
 * mounted with project quotas (pquota/prjquota). (The inner Docker's data has
 * a disk of its own, environment-disks.ts; named volumes of the local driver have
 * no size at all.) Where a limit cannot be enforced the build log says why.
 */

import { readFile, realpath, statfs } from "node:fs/promises";

const xfsMagic = 0x58465342;

export interface DiskLimit {
  /** The StorageOpt for the container's writable layer, when enforceable. */
  storageOpt?: Record<string, string>;
  note: string;
}

function mountOf(path: string, mountinfo: string): { point: string; fsType: string; options: string } | undefined {
  let best: { point: string; fsType: string; options: string } | undefined;
  for (const line of mountinfo.split("\n")) {
    const [left, right] = line.split(" - ");
    if (!left || !right) continue;
    const fields = left.split(" ");
    const point = fields[4];
    const [fsType, , superOptions = ""] = right.split(" ");
    const under = point === "/" || path === point || path.startsWith(`${point}/`);
    if (under && (!best || point.length >= best.point.length)) {
      best = { point, fsType, options: `${fields[5]},${superOptions}` };
    }
  }
  return best;
}

export async function diskLimit(engineDataRoot: string, diskGiB: number): Promise<DiskLimit> {
  // The mount table names real paths; the engine's root may be a link to a relocated one.
  const dataRoot = await realpath(engineDataRoot).catch(() => engineDataRoot);
  const [info, mountinfo] = await Promise.all([
    statfs(dataRoot).catch(() => undefined),
    readFile("/proc/self/mountinfo", "utf8"),
  ]);
  const mount = mountOf(dataRoot, mountinfo);
  const fsType = mount?.fsType ?? "unknown";
  if (info?.type === xfsMagic && /(^|,)(pquota|prjquota)(,|$)/.test(mount?.options ?? "")) {
    return {
      storageOpt: { size: `${diskGiB}G` },
      note: `the root filesystem is limited to ${diskGiB} GiB (xfs project quota)`,
    };
  }
  return {
    note: `the root filesystem's writes are not limited (cvm's engine data is on ${fsType} at ${mount?.point ?? "?"}, without xfs project quotas)`,
  };
}

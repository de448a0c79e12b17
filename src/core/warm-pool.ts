/**
 * Warm pools: booted CVMs a site admin keeps ready per image and size, so
 * that creating a CVM of that image claims one instead of building it. The
 * rules as plain data and functions: which pool a request fits, what is wrong
 * with an admin's list of pools, and what to do to bring the members a
 * provider holds in line with that list (a plan the pool service carries out).
 */

import type { Validation } from "./errors.js";
import { isImageReference, parseImageReference } from "./image-reference.js";
import type { Environment, EnvironmentLimits, EnvironmentSpec, PoolMember, WarmPool } from "./schemas.js";
import type { InfrastructureSettings } from "./settings.js";

// The shapes themselves are zod schemas in ./schemas.ts; their types are re-exported here.
export type { PoolMember, WarmPool } from "./schemas.js";

/** filling: its build runs; ready: booted and waiting; failed: its build failed or its workload vanished. */
export const poolMemberStates = ["filling", "ready", "failed"] as const;
export type PoolMemberState = (typeof poolMemberStates)[number];

/** The most CVMs one pool keeps: each holds its CPUs, memory and disk while it waits. */
export const maxPoolCount = 20;
export const maxPools = 20;

export type PoolSize = Pick<WarmPool, "image" | "cpu" | "memoryGiB" | "diskGiB">;

/** A pool's name: its image and size. Members carry it, so a pool changed in size is a new pool. */
export function poolKey(pool: PoolSize): string {
  return `${pool.image} (${pool.cpu} CPU, ${pool.memoryGiB} GiB, disk ${pool.diskGiB} GiB)`;
}

/**
 * Whether a pool's CVMs can become the requested environment: the same image
 * and disk (a disk is made at its size), and at least the CPUs and memory
 * asked for (a claim sets the limits to the request's).
 */
export function fits(pool: PoolSize, spec: Pick<EnvironmentSpec, "image" | "cpu" | "memoryGiB" | "diskGiB">): boolean {
  return (
    pool.image === spec.image &&
    pool.diskGiB === spec.diskGiB &&
    pool.cpu >= spec.cpu &&
    pool.memoryGiB >= spec.memoryGiB
  );
}

export type PoolFit = { pools: WarmPool[] } | { miss: string };

/**
 * The pools a CVM request may claim from, the closest in size first; or,
 * when none fits, why (the build log says it before the cold path).
 */
export function poolsFor(spec: EnvironmentSpec, pools: readonly WarmPool[]): PoolFit {
  const ofImage = pools.filter((pool) => pool.image === spec.image && pool.count > 0);
  if (ofImage.length === 0) return { miss: `no warm pool for ${spec.image}` };
  const fitting = ofImage.filter((pool) => fits(pool, spec));
  if (fitting.length === 0) {
    return {
      miss: `no warm pool of ${spec.image} fits ${spec.cpu} CPU, ${spec.memoryGiB} GiB, disk ${spec.diskGiB} GiB (its pools: ${ofImage.map(poolKey).join("; ")})`,
    };
  }
  return { pools: [...fitting].sort((a, b) => a.cpu - b.cpu || a.memoryGiB - b.memoryGiB) };
}

const isCount = (value: unknown) =>
  Number.isInteger(value) && (value as number) >= 0 && (value as number) <= maxPoolCount;

function sizeProblem(value: unknown, min: number, max: number, unit: string): string | undefined {
  if (typeof value !== "number" || !Number.isFinite(value)) return "must be a number";
  if (value < min || value > max) return `must be between ${min} and ${max}${unit} (the environment limits)`;
  return undefined;
}

/** Problems with an admin's list of pools, each on its field (`pools.2.count`); empty when valid. */
export function poolProblems(pools: unknown, limits: EnvironmentLimits): Validation[] {
  if (!Array.isArray(pools)) return [{ field: "pools", detail: "must be a list of pools" }];
  const problems: Validation[] = [];
  if (pools.length > maxPools) problems.push({ field: "pools", detail: `must hold at most ${maxPools} pools` });
  const seen = new Set<string>();
  pools.forEach((pool: Partial<WarmPool>, i) => {
    const add = (field: string, detail: string | undefined) => {
      if (detail) problems.push({ field: `pools.${i}.${field}`, detail });
    };
    const image = typeof pool?.image === "string" ? parseImageReference(pool.image) : undefined;
    add("image", !image ? "is required" : isImageReference(image) ? undefined : image.problem);
    add("cpu", sizeProblem(pool?.cpu, limits.minCpu, limits.maxCpu, " CPUs"));
    add("memoryGiB", sizeProblem(pool?.memoryGiB, limits.minMemoryGiB, limits.maxMemoryGiB, " GiB"));
    add("diskGiB", sizeProblem(pool?.diskGiB, limits.minDiskGiB, limits.maxDiskGiB, " GiB"));
    add("count", isCount(pool?.count) ? undefined : `must be a whole number from 0 to ${maxPoolCount}`);
    const key = poolKey(pool as WarmPool);
    if (seen.has(key)) add("image", "the same image and size is listed twice");
    seen.add(key);
  });
  return problems;
}

/** Puts a pool in the list, replacing the one of the same image and size; a count of 0 takes it out. */
export function withPool(pools: readonly WarmPool[], pool: WarmPool): WarmPool[] {
  const others = pools.filter((p) => poolKey(p) !== poolKey(pool));
  return pool.count > 0 ? [...others, pool] : others;
}

/** The Infrastructure settings a member is built under that change what a CVM is: a claim needs them unchanged. */
export type MemberSettings = Pick<InfrastructureSettings, "runtime" | "lxcfs" | "fuseDevice" | "tunDevice">;

const onOff = (value: boolean) => (value ? "on" : "off");

/** Why a member is not what a CVM built under these settings would be; undefined when it is. */
export function settingsChange(member: PoolMember, settings: MemberSettings): string | undefined {
  if (member.runtimeSetting !== settings.runtime) return `the isolation runtime setting is now ${settings.runtime}`;
  const devices = member.devices;
  if (!devices) return "it was built before its LXCFS and device settings were recorded";
  const changed = [
    devices.lxcfs !== settings.lxcfs && `LXCFS is now ${onOff(settings.lxcfs)}`,
    devices.fuseDevice !== settings.fuseDevice && `/dev/fuse is now ${onOff(settings.fuseDevice)}`,
    devices.tunDevice !== settings.tunDevice && `/dev/net/tun is now ${onOff(settings.tunDevice)}`,
  ].filter(Boolean);
  return changed.length > 0
    ? `the Infrastructure settings changed since it was built: ${changed.join(", ")}`
    : undefined;
}

export type PoolStep = { fill: WarmPool } | { drain: PoolMember; why: string };

export interface PoolPlanInput {
  /** The pools the settings ask for (none while CVMs are disabled). */
  pools: readonly WarmPool[];
  /** The members held now, less those being claimed. */
  members: readonly PoolMember[];
  /** The settings new members are built under: a member built under others is drained. */
  settings: MemberSettings;
  /** The image versions (registry digests) known now, by image; a ready member of another version is stale. */
  imageVersions: ReadonlyMap<string, string>;
}

/**
 * What to do now: drain every member no pool wants (failed, of a pool
 * removed or shrunk, built under another runtime, LXCFS or device setting or from an image
 * its registry has since replaced), and fill each pool up to its count.
 * A pool shrinks by its newest members, those still filling first.
 */
export function planPools(input: PoolPlanInput): PoolStep[] {
  const steps: PoolStep[] = [];
  const wanted = new Map(input.pools.map((pool) => [poolKey(pool), pool]));
  const live = new Map<string, PoolMember[]>();
  for (const member of input.members) {
    const version = input.imageVersions.get(member.image);
    const why =
      member.state === "failed"
        ? `its build failed: ${member.reason ?? "no reason given"}`
        : !wanted.has(member.pool)
          ? "its pool was removed"
          : settingsChange(member, input.settings)
            ? settingsChange(member, input.settings)
            : member.state === "ready" && version && member.imageVersion && member.imageVersion !== version
              ? `${member.image} changed in its registry`
              : undefined;
    if (why) steps.push({ drain: member, why });
    else live.set(member.pool, [...(live.get(member.pool) ?? []), member]);
  }
  for (const [key, pool] of wanted) {
    const members = live.get(key) ?? [];
    const surplus = members.length - pool.count;
    if (surplus > 0) {
      const newestFirst = [...members].sort(
        (a, b) => Number(a.state === "ready") - Number(b.state === "ready") || b.createdAt.localeCompare(a.createdAt),
      );
      for (const member of newestFirst.slice(0, surplus)) steps.push({ drain: member, why: "its pool shrank" });
    }
    for (let i = members.length; i < pool.count; i++) steps.push({ fill: pool });
  }
  return steps;
}

/** A new member of the pool, about to be built under the settings: it takes the id it will give its claimant. */
export function newMember(pool: WarmPool, id: string, settings: MemberSettings, createdAt: string): PoolMember {
  return {
    id,
    pool: poolKey(pool),
    image: pool.image,
    cpu: pool.cpu,
    memoryGiB: pool.memoryGiB,
    diskGiB: pool.diskGiB,
    runtimeSetting: settings.runtime,
    devices: { lxcfs: settings.lxcfs, fuseDevice: settings.fuseDevice, tunDevice: settings.tunDevice },
    state: "filling",
    createdAt,
  };
}

/**
 * The environment record a member is built as: its own id and a name of its
 * own (the hostname while it waits), the pool's image and size. A claim
 * renames it to the environment that takes its id.
 */
export function memberEnvironment(member: PoolMember, runtime: Environment["runtime"]): Environment {
  return {
    id: member.id,
    name: `pool-${member.id.slice(-8)}`,
    image: member.image,
    cvm: true,
    cpu: member.cpu,
    memoryGiB: member.memoryGiB,
    diskGiB: member.diskGiB,
    ownerId: "",
    ownerEmail: "",
    state: "queued",
    runtime,
    systemd: "unknown",
    failedUnits: [],
    docker: "unknown",
    timeline: [],
    createdAt: member.createdAt,
    updatedAt: member.createdAt,
    version: 1,
  };
}

/**
 * Pooled CVMs count against capacity: the pools' CPUs and memory in all
 * (each pool's size times its count) may not exceed the machine's.
 */
export function capacityProblems(
  pools: readonly WarmPool[],
  capacity: { cpu: number; memoryGiB: number },
): Validation[] {
  const cpu = pools.reduce((sum, pool) => sum + pool.cpu * pool.count, 0);
  const memoryGiB = pools.reduce((sum, pool) => sum + pool.memoryGiB * pool.count, 0);
  const problems: Validation[] = [];
  const round = (value: number) => Math.round(value * 100) / 100;
  if (cpu > capacity.cpu) {
    problems.push({
      field: "pools",
      detail: `the warm pools would hold ${round(cpu)} CPUs in all, more than the engine's machine has (${capacity.cpu})`,
    });
  }
  if (memoryGiB > capacity.memoryGiB) {
    problems.push({
      field: "pools",
      detail: `the warm pools would hold ${round(memoryGiB)} GiB of memory in all, more than the engine's machine has (${round(capacity.memoryGiB)} GiB)`,
    });
  }
  return problems;
}

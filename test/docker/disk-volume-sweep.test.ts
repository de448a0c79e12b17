/**
 * The sweep an engine's start makes of disk volumes' records (issue 13): an
 * engine restarted under live restore can refuse to remove a volume whose
 * container is gone ("volume has active mounts"), leaving a record whose disk
 * cvm already deleted. Against the host's real engine: such a record is
 * removed at the next start's sweep; a volume in use, one whose disk is still
 * there, and one that holds its data itself are left alone.
 */

import assert from "node:assert/strict";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import Dockerode from "dockerode";
import { ignoreMissing, labels } from "../../src/docker/index.js";
import { diskPaths, diskVolumeOptions, sweepDiskVolumes } from "../../src/supervisor/environment-disks.js";
import { hostDockerSocket } from "../harness/services.js";

const docker = new Dockerode({ socketPath: process.env.CVM_TEST_HOST_DOCKER ?? hostDockerSocket });
const run = `${process.pid}-${Date.now().toString(36)}`;
let disksDir: string;
const made: string[] = [];
let user: Dockerode.Container | undefined;

/** A disk volume as the supervisor makes one, for environment `id`; its disk image made too when `withDisk`. */
async function diskVolume(kind: "docker" | "home", id: string, withDisk: boolean): Promise<string> {
  const disk = diskPaths(disksDir, id, kind);
  await mkdir(disk.source, { recursive: true });
  if (withDisk) await writeFile(disk.image, "");
  const name = `cvm-${kind}-${id}`;
  await docker.createVolume({ Name: name, Labels: { [labels.environment]: id }, ...diskVolumeOptions(disk) });
  made.push(name);
  return name;
}

before(async () => {
  disksDir = await mkdtemp(join(tmpdir(), "cvm-sweep-"));
});

after(async () => {
  if (user) await ignoreMissing(user.remove({ force: true }));
  for (const name of made) await ignoreMissing(docker.getVolume(name).remove({ force: true }));
  await rm(disksDir, { recursive: true, force: true });
});

test("an engine's start removes the records of disk volumes whose disks are gone, and nothing else", async () => {
  const gone = await diskVolume("docker", `${run}-gone`, false);
  const goneHome = await diskVolume("home", `${run}-gonehome`, false);
  const kept = await diskVolume("home", `${run}-kept`, true);
  const inUse = await diskVolume("home", `${run}-used`, false);
  const ownData = `cvm-home-${run}-own`;
  await docker.createVolume({ Name: ownData, Labels: { [labels.environment]: `${run}-own` } });
  made.push(ownData);
  const images = await docker.listImages();
  const image = images.find((i) => i.RepoTags?.some((t) => t.includes("hello")))?.RepoTags?.[0];
  assert.ok(image, "a hello image on the host engine");
  user = await docker.createContainer({ Image: image, Cmd: ["true"], HostConfig: { Binds: [`${inUse}:/data`] } });

  const swept = await sweepDiskVolumes(docker, disksDir);
  assert.deepEqual(swept.sort(), [gone, goneHome].sort());
  const left = new Set(
    ((await docker.listVolumes()).Volumes ?? []).map((v) => v.Name).filter((name) => made.includes(name)),
  );
  assert.deepEqual([...left].sort(), [kept, inUse, ownData].sort());
});

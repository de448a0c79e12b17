import assert from "node:assert/strict";
import { test } from "node:test";
import type { Environment } from "../../core/environment.js";
import { homeVolumeName } from "../../docker/index.js";
import { containerName, containerRequest, keepAlive, shortId } from "./workload.js";

const environment = {
  id: "env_0123456789abcdef0123",
  name: "dev",
  ownerId: "usr_1",
  buildId: "bld_9",
  image: "127.0.0.1:5000/cvm/debian-plain:1",
  cpu: 2,
  memoryGiB: 1.5,
  diskGiB: 10,
} as Environment;

test("a container is named for its environment and told apart by its id", () => {
  assert.equal(shortId(environment.id), "01234567");
  assert.equal(containerName(environment), "cvm-dev-01234567");
  assert.equal(homeVolumeName(environment.id), "cvm-home-env_0123456789abcdef0123");
});

test("the create request applies the limits, labels and home volume, and nothing of the host", () => {
  const request = containerRequest({
    environment,
    image: environment.image,
    networkId: "net-id",
    installationId: "ins_1",
    pidsLimit: 4096,
  });
  const host = request.HostConfig ?? {};
  assert.equal(host.NanoCpus, 2_000_000_000);
  assert.equal(host.Memory, 1.5 * 2 ** 30);
  assert.equal(host.MemorySwap, host.Memory);
  assert.deepEqual(request.Labels, {
    "dev.cvm.managed": "true",
    "dev.cvm.installation": "ins_1",
    "dev.cvm.environment": environment.id,
    "dev.cvm.build": "bld_9",
    "dev.cvm.owner": "usr_1",
  });
  assert.deepEqual(host.Mounts, [{ Type: "volume", Source: homeVolumeName(environment.id), Target: "/home" }]);
  assert.equal(host.Privileged, false);
  assert.deepEqual([host.Binds, host.Devices, host.CapAdd], [[], [], []]);
  assert.deepEqual(host.CapDrop, ["NET_RAW"], "no forged packets on the shared bridge");
  assert.equal(host.PidsLimit, 4096);
  assert.deepEqual(host.RestartPolicy, { Name: "no" });
  assert.equal(host.NetworkMode, "net-id");
  assert.equal(host.Init, true);
  assert.deepEqual(request.Entrypoint, keepAlive);
});

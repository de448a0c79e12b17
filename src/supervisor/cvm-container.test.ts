import assert from "node:assert/strict";
import { test } from "node:test";
import { cvmContainerRequest } from "./cvm-container.js";
import { cvmSeccompProfile, unconditionallyAllowed } from "./seccomp.js";

const environment = { id: "env1", name: "dev", cpu: 2, memoryGiB: 4 };
const gateBinary = "/var/lib/cvm/engine/bin/cvm-gate-abc";

const common = {
  name: "cvm-env-env1",
  Image: "registry.example/dev:1",
  Hostname: "dev",
  Entrypoint: ["/.cvm/cvm-gate"],
  Cmd: ["hold", "/sbin/init"],
  Env: ["container=docker"],
  StopSignal: "SIGRTMIN+3",
};

const commonHost = {
  Mounts: [
    { Type: "volume", Source: "cvm-docker-env1", Target: "/var/lib/docker" },
    { Type: "volume", Source: "cvm-home-env1", Target: "/home" },
    { Type: "bind", Source: gateBinary, Target: "/.cvm/cvm-gate", ReadOnly: true },
  ],
  Tmpfs: { "/run": "rw,nosuid,nodev,mode=755", "/run/lock": "rw,nosuid,nodev,noexec,mode=1777" },
  Memory: 4 * 1024 ** 3,
  MemorySwap: 4 * 1024 ** 3,
  NanoCpus: 2e9,
  PidsLimit: 4096,
  RestartPolicy: { Name: "no" },
  LogConfig: { Type: "json-file", Config: { "max-size": "10m", "max-file": "2" } },
};

test("sysbox: the create request runs sysbox-runc as the seed does, unprivileged, without cvm's own userns pieces", () => {
  const request = cvmContainerRequest({
    environment,
    image: "registry.example/dev:1",
    runtime: "sysbox",
    gateBinary,
    pidsLimit: 4096,
  });
  assert.deepEqual(request, {
    ...common,
    Labels: { "dev.cvm.managed": "true", "dev.cvm.environment": "env1", "dev.cvm.runtime": "sysbox" },
    HostConfig: { ...commonHost, Runtime: "sysbox-runc", Privileged: false },
  });
});

test("userns: never privileged, two capabilities, private cgroup namespace, cvm's seccomp profile, no devices", () => {
  const seccomp = JSON.stringify(cvmSeccompProfile());
  const request = cvmContainerRequest({
    environment,
    image: "registry.example/dev:1",
    runtime: "userns",
    gateBinary,
    pidsLimit: 4096,
    seccomp,
    apparmor: "cvm-default",
  });
  assert.deepEqual(request, {
    ...common,
    Labels: { "dev.cvm.managed": "true", "dev.cvm.environment": "env1", "dev.cvm.runtime": "userns" },
    HostConfig: {
      ...commonHost,
      SecurityOpt: [`seccomp=${seccomp}`, "apparmor=cvm-default"],
      CapAdd: ["SYS_ADMIN", "NET_ADMIN"],
      CgroupnsMode: "private",
      Privileged: false,
    },
  });
  const host = request.HostConfig as unknown as Record<string, unknown>;
  for (const forbidden of ["Devices", "Binds", "PidMode", "IpcMode", "UsernsMode", "CapDrop"]) {
    assert.equal(host[forbidden], undefined, `${forbidden} must not be set`);
  }
});

test("a disk limit the filesystem can enforce goes to the writable layer", () => {
  const request = cvmContainerRequest({
    environment,
    image: "i",
    runtime: "userns",
    gateBinary,
    pidsLimit: 4096,
    storageOpt: { size: "20G" },
  });
  assert.deepEqual(request.HostConfig?.StorageOpt, { size: "20G" });
});

test("seccomp: Docker's default plus keyctl and pivot_root, nothing else unconditional", () => {
  const profile = cvmSeccompProfile();
  assert.equal(profile.defaultAction, "SCMP_ACT_ERRNO");
  const allowed = unconditionallyAllowed(profile);
  assert.ok(allowed.has("keyctl"));
  assert.ok(allowed.has("pivot_root"));
  for (const denied of ["add_key", "request_key", "kexec_load", "init_module", "open_by_handle_at", "swapon"]) {
    assert.ok(!allowed.has(denied), `${denied} stays denied`);
  }
  // mount is only allowed under CAP_SYS_ADMIN, as in Docker's profile.
  assert.ok(!allowed.has("mount"));
  const added = profile.syscalls.filter((rule) => rule.comment?.startsWith("cvm:")).flatMap((rule) => rule.names);
  assert.deepEqual(added.sort(), ["keyctl", "pivot_root"]);
});

test("in a Pod, the claim's directories are bound as /var/lib/docker and /home instead of volumes", () => {
  const request = cvmContainerRequest({
    environment,
    image: "i",
    runtime: "userns",
    gateBinary,
    pidsLimit: 4096,
    volumeSources: { home: "/claim/home", dockerData: "/claim/docker" },
  });
  assert.deepEqual(request.HostConfig?.Mounts, [
    { Type: "bind", Source: "/claim/docker", Target: "/var/lib/docker" },
    { Type: "bind", Source: "/claim/home", Target: "/home" },
    { Type: "bind", Source: gateBinary, Target: "/.cvm/cvm-gate", ReadOnly: true },
  ]);
});

test("with a disk of its own, /var/lib/docker is bound from it; /home stays a volume", () => {
  const request = cvmContainerRequest({
    environment,
    image: "i",
    runtime: "userns",
    gateBinary,
    pidsLimit: 4096,
    dockerDisk: "/var/lib/cvm/engine/disks/cvm-docker-env1",
  });
  assert.deepEqual(request.HostConfig?.Mounts?.slice(0, 2), [
    { Type: "bind", Source: "/var/lib/cvm/engine/disks/cvm-docker-env1", Target: "/var/lib/docker" },
    { Type: "volume", Source: "cvm-home-env1", Target: "/home" },
  ]);
});

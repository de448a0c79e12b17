import assert from "node:assert/strict";
import { test } from "node:test";
import { boundVolume, cvmContainerRequest } from "./cvm-container.js";
import {
  cvmSeccompProfile,
  dockerDefaultProfile,
  resolveCapabilities,
  syscallCapabilities,
  unconditionallyAllowed,
} from "./seccomp.js";

const environment = { id: "env1", name: "dev", cpu: 2, memoryGiB: 4 };
const gateBinary = "/var/lib/cvm/engine/bin/cvm-gate-abc";

const common = {
  name: "cvm-env-env1",
  Image: "registry.example/dev:1",
  Hostname: "dev",
  Entrypoint: ["/.cvm/cvm-gate"],
  Cmd: ["hold", "--cpus=2", "/sbin/init"],
  Env: ["container=docker"],
  StopSignal: "SIGRTMIN+3",
};

const masks =
  "--mask=sys-kernel-debug.mount,sys-kernel-tracing.mount,sys-kernel-config.mount,systemd-modules-load.service,modprobe@.service,kmod-static-nodes.service,e2scrub_reap.service,systemd-journal-flush.service";

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

test("userns: never privileged, every capability in its user namespace, whole /proc and /sys, private cgroup namespace, cvm's seccomp profile, no host devices", () => {
  const seccomp = JSON.stringify(cvmSeccompProfile());
  const request = cvmContainerRequest({
    environment,
    image: "registry.example/dev:1",
    runtime: "userns",
    gateBinary,
    pidsLimit: 4096,
    seccomp,
    apparmor: "cvm-default",
    sysfsReference: "/var/lib/cvm/engine/sysfs",
  });
  assert.deepEqual(request, {
    ...common,
    Cmd: ["hold", masks, "--cpus=2", "/sbin/init"],
    Labels: { "dev.cvm.managed": "true", "dev.cvm.environment": "env1", "dev.cvm.runtime": "userns" },
    HostConfig: {
      ...commonHost,
      Mounts: [
        ...commonHost.Mounts,
        { Type: "bind", Source: "/var/lib/cvm/engine/sysfs", Target: "/.cvm/sysfs", ReadOnly: true },
      ],
      SecurityOpt: [`seccomp=${seccomp}`, "apparmor=cvm-default"],
      CapAdd: ["ALL"],
      MaskedPaths: [],
      ReadonlyPaths: [],
      CgroupnsMode: "private",
      Privileged: false,
    },
  });
  const host = request.HostConfig as unknown as Record<string, unknown>;
  for (const forbidden of ["Devices", "DeviceCgroupRules", "Binds", "PidMode", "IpcMode", "UsernsMode", "CapDrop"]) {
    assert.equal(host[forbidden], undefined, `${forbidden} must not be set`);
  }
});

test("userns: FUSE and TUN are cvm's own nodes, bound in, each with a device cgroup rule for exactly that device", () => {
  const request = cvmContainerRequest({
    environment,
    image: "i",
    runtime: "userns",
    gateBinary,
    pidsLimit: 4096,
    devices: { fuse: "/e/devices/fuse", tun: "/e/devices/tun" },
  });
  assert.deepEqual(request.HostConfig?.Mounts?.slice(-2), [
    { Type: "bind", Source: "/e/devices/fuse", Target: "/dev/fuse" },
    { Type: "bind", Source: "/e/devices/tun", Target: "/dev/net/tun" },
  ]);
  assert.deepEqual(request.HostConfig?.DeviceCgroupRules, ["c 10:229 rwm", "c 10:200 rwm"]);
  const onlyTun = cvmContainerRequest({
    environment,
    image: "i",
    runtime: "userns",
    gateBinary,
    pidsLimit: 4096,
    devices: { tun: "/t" },
  });
  assert.deepEqual(onlyTun.HostConfig?.DeviceCgroupRules, ["c 10:200 rwm"]);
  const sysbox = cvmContainerRequest({
    environment,
    image: "i",
    runtime: "sysbox",
    gateBinary,
    pidsLimit: 4096,
    devices: { tun: "/t" },
  });
  assert.equal(sysbox.HostConfig?.DeviceCgroupRules, undefined, "sysbox-runc brings its own devices");
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

test("seccomp: Docker's default for its default capabilities + SYS_ADMIN, NET_ADMIN, plus keyctl and pivot_root, nothing else", () => {
  const profile = cvmSeccompProfile();
  assert.equal(profile.defaultAction, "SCMP_ACT_ERRNO");
  const allowed = unconditionallyAllowed(profile);
  assert.ok(allowed.has("keyctl"));
  assert.ok(allowed.has("pivot_root"));
  // What SYS_ADMIN opened in Docker's profile is open: the mounts systemd and the inner dockerd make.
  for (const open of ["mount", "umount2", "unshare", "setns", "fsopen", "chroot"]) assert.ok(allowed.has(open), open);
  // What the capabilities a CVM holds beyond those would open in Docker's profile stays shut.
  for (const denied of [
    "add_key",
    "request_key",
    "kexec_load",
    "init_module",
    "finit_module",
    "delete_module",
    "open_by_handle_at",
    "swapon",
    "reboot",
    "settimeofday",
    "clock_settime",
    "iopl",
    "ioperm",
    "acct",
    "process_vm_readv",
    "vhangup",
  ]) {
    assert.ok(!allowed.has(denied), `${denied} stays denied`);
  }
  const added = profile.syscalls.filter((rule) => rule.comment?.startsWith("cvm:")).flatMap((rule) => rule.names);
  assert.deepEqual(added.sort(), ["keyctl", "pivot_root"]);
  for (const rule of profile.syscalls) {
    assert.equal(
      (rule.includes as { caps?: unknown })?.caps,
      undefined,
      "no capability condition is left to the engine",
    );
    assert.equal(
      (rule.excludes as { caps?: unknown })?.caps,
      undefined,
      "no capability condition is left to the engine",
    );
  }
});

test("seccomp resolution reads capability conditions as Docker does: all included caps held, no excluded cap held", () => {
  const base = dockerDefaultProfile();
  const resolved = resolveCapabilities(base, syscallCapabilities);
  const names = (p: typeof base) => new Set(p.syscalls.flatMap((r) => r.names));
  // clone without namespace flags is the rule for containers lacking SYS_ADMIN: dropped, as SYS_ADMIN is held.
  const restrictedClone = (p: typeof base) =>
    p.syscalls.filter((r) => r.names.includes("clone") && (r.args?.length ?? 0) > 0).length;
  assert.ok(restrictedClone(base) > 0);
  assert.equal(restrictedClone(resolved), 0);
  // Nothing appears that the profile did not name.
  for (const name of names(resolved)) assert.ok(names(base).has(name), name);
  // Arch conditions stay for the engine to apply.
  assert.ok(resolved.syscalls.some((r) => Object.keys(r.includes ?? {}).includes("arches")));
});

test("in a Pod, the claim's directories back the named volumes, so the image's /home is copied in", () => {
  assert.deepEqual(boundVolume("cvm-home-env1", "env1", "/var/lib/cvm/volumes/home"), {
    Name: "cvm-home-env1",
    Driver: "local",
    DriverOpts: { type: "none", o: "bind", device: "/var/lib/cvm/volumes/home" },
    Labels: { "dev.cvm.managed": "true", "dev.cvm.environment": "env1" },
  });
  const request = cvmContainerRequest({ environment, image: "i", runtime: "userns", gateBinary, pidsLimit: 4096 });
  assert.deepEqual(request.HostConfig?.Mounts?.slice(0, 2), [
    { Type: "volume", Source: "cvm-docker-env1", Target: "/var/lib/docker" },
    { Type: "volume", Source: "cvm-home-env1", Target: "/home" },
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

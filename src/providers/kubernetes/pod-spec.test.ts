import assert from "node:assert/strict";
import { test } from "node:test";
import { defaultSettings } from "../../core/settings.js";
import { objectNames } from "./names.js";
import { environmentSecretSpec, standardPodSpec, supervisorPodSpec } from "./pod-spec.js";

const environment = {
  id: "env_0123456789abcdef0123",
  name: "dev",
  image: "registry.example.com:5000/team/dev:1",
  cvm: true,
  cpu: 2,
  memoryGiB: 4,
  diskGiB: 20,
  ownerEmail: "ada@example.com",
  buildId: "bld_42",
};

test("names are DNS labels derived from the environment id", () => {
  assert.deepEqual(objectNames(environment.id), {
    pod: "cvm-env-0123456789abcdef0123",
    claim: "cvm-env-0123456789abcdef0123-home",
    secret: "cvm-env-0123456789abcdef0123",
  });
});

test("a CVM's Pod: privileged supervisor, claim subpaths, host paths read-only, resources by the downward API", () => {
  const pod = supervisorPodSpec(environment, defaultSettings);
  const container = pod.spec?.containers[0];
  assert.deepEqual(container?.command, ["cvm", "supervisor"]);
  assert.deepEqual(container?.securityContext, { privileged: true });
  assert.deepEqual(container?.resources?.limits, { cpu: "2", memory: "4096Mi" });
  assert.equal(pod.metadata?.labels?.["dev.cvm/build"], "bld_42");
  assert.equal(pod.spec?.automountServiceAccountToken, false);
  const mounts = Object.fromEntries((container?.volumeMounts ?? []).map((m) => [m.mountPath, m]));
  assert.equal(mounts["/var/lib/cvm/volumes/home"].subPath, "home");
  assert.equal(mounts["/var/lib/cvm/volumes/docker"].subPath, "docker");
  assert.equal(mounts["/usr/src"].readOnly, true);
  assert.equal(mounts["/lib/modules"].readOnly, true);
  const downward = (container?.env ?? []).filter((e) => e.valueFrom?.resourceFieldRef).map((e) => e.name);
  assert.deepEqual(downward, [
    "CVM_CPU_REQUEST_MILLIS",
    "CVM_CPU_LIMIT_MILLIS",
    "CVM_MEMORY_REQUEST_MIB",
    "CVM_MEMORY_LIMIT_MIB",
  ]);
  // The password never appears in the spec: only the Secret's file path does.
  assert.ok(!JSON.stringify(pod).includes("hunter2"));
  assert.ok((container?.env ?? []).every((e) => !e.valueFrom?.secretKeyRef));
});

test("the FUSE and TUN settings reach the supervisor, which makes the devices from the node's /dev it sees privileged", () => {
  const env = (settings: typeof defaultSettings) =>
    Object.fromEntries(
      (supervisorPodSpec(environment, settings).spec?.containers[0].env ?? []).map((e) => [e.name, e.value]),
    );
  assert.equal(env(defaultSettings).CVM_FUSE_DEVICE, "true");
  assert.equal(env(defaultSettings).CVM_TUN_DEVICE, "true");
  const off = env({ ...defaultSettings, fuseDevice: false, tunDevice: false });
  assert.equal(off.CVM_FUSE_DEVICE, "false");
  assert.equal(off.CVM_TUN_DEVICE, "false");
});

test("capabilities instead of privileged when the settings say so", () => {
  const pod = supervisorPodSpec(environment, {
    ...defaultSettings,
    supervisorPrivileges: { mode: "capabilities", capabilities: ["CAP_SYS_ADMIN", "NET_ADMIN"] },
  });
  const context = pod.spec?.containers[0].securityContext;
  assert.equal(context?.privileged, undefined);
  assert.deepEqual(context?.capabilities?.add, ["SYS_ADMIN", "NET_ADMIN"]);
});

test("a standard environment runs its image with the same home claim and pulls with the Secret", () => {
  const pod = standardPodSpec({ ...environment, cvm: false });
  assert.equal(pod.spec?.containers[0].image, environment.image);
  assert.equal(pod.spec?.containers[0].securityContext, undefined);
  assert.deepEqual(pod.spec?.imagePullSecrets, [{ name: "cvm-env-0123456789abcdef0123" }]);
  assert.equal(pod.spec?.volumes?.[0].persistentVolumeClaim?.claimName, "cvm-env-0123456789abcdef0123-home");
});

test("the Secret carries the credentials for the image's registry and the report token", () => {
  const secret = environmentSecretSpec(environment, { username: "ada", password: "hunter2" }, "tok");
  const config = JSON.parse(secret.stringData?.[".dockerconfigjson"] ?? "{}");
  assert.equal(config.auths["registry.example.com:5000"].password, "hunter2");
  assert.equal(secret.stringData?.["report-token"], "tok");
});

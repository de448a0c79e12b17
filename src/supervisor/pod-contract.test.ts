/**
 * The round trip from the Pod spec the kubernetes provider creates to what
 * the agent inside it sees: the container's variables resolved as the
 * kubelet resolves them (values, and the downward API's resources), the
 * Secret's keys written as files under its mount, then the agent's decoder.
 */

import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { test } from "node:test";
import type { V1Container, V1Pod, V1Secret } from "@kubernetes/client-node";
import { defaultSettings } from "../core/settings.js";
import { environmentPodSpec, environmentSecretSpec } from "../providers/kubernetes/pod-spec.js";
import { podEnvironment } from "./pod-agent.js";
import {
  decodePodVariables,
  decodeProbeVerdict,
  decodeRegistryAuth,
  decodeRegistryAuthFor,
  encodeProbeVerdict,
  encodeRegistryAuth,
  probeVerdictBytes,
  supervisorReportUrl,
} from "./pod-contract.js";

const environment = {
  id: "env_0123456789abcdef0123",
  name: "dev",
  image: "registry.example.com:5000/team/dev:1",
  cvm: true,
  cpu: 1.5,
  memoryGiB: 2.5,
  diskGiB: 20,
  ownerEmail: "ada@example.com",
  buildId: "bld_42",
};
const credentials = { username: "ada", password: "hunter2" };
const serverUrl = "http://cvm.cvm.svc:7080/";

/** A quantity ("1.5", "1500m", "2560Mi", "2Gi") in units of the divisor ("1m", "1Mi"), rounded up as the kubelet does. */
function inUnits(quantity: string, divisor: string): number {
  const units: Record<string, number> = { "": 1, m: 1e-3, Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30 };
  const [, amount, unit] = /^([\d.]+)(m|Ki|Mi|Gi)?$/.exec(quantity) ?? [];
  const [, divisorAmount, divisorUnit] = /^([\d.]+)(m|Ki|Mi|Gi)?$/.exec(divisor) ?? [];
  return Math.ceil((Number(amount) * units[unit ?? ""]) / (Number(divisorAmount) * units[divisorUnit ?? ""]));
}

/** The container's environment as the kubelet gives it to the process. */
function kubeletEnvironment(container: V1Container): NodeJS.ProcessEnv {
  const resources = container.resources as { limits: Record<string, string>; requests: Record<string, string> };
  const env: NodeJS.ProcessEnv = {};
  for (const variable of container.env ?? []) {
    const field = variable.valueFrom?.resourceFieldRef;
    if (field) {
      const [kind, name] = field.resource.split(".") as ["limits" | "requests", string];
      env[variable.name] = String(inUnits(resources[kind][name], String(field.divisor)));
    } else {
      assert.ok(!variable.valueFrom, `${variable.name}: only plain values and the downward API's resources`);
      env[variable.name] = variable.value;
    }
  }
  return env;
}

/** Mounts the Secret as the kubelet would, below `root`: one file a key, under the secret volume's mount path. */
function mountSecret(pod: V1Pod, container: V1Container, secret: V1Secret, root: string): string {
  const volume = pod.spec?.volumes?.find((v) => v.secret?.secretName === secret.metadata?.name);
  const mount = container.volumeMounts?.find((m) => m.name === volume?.name);
  assert.ok(mount, "the Secret is mounted in the supervisor container");
  for (const [key, value] of Object.entries(secret.stringData ?? {})) {
    const file = join(root, mount.mountPath, key);
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, value);
  }
  return mount.mountPath;
}

test("the agent sees the environment, limits, build, report URL and directories its Pod spec was made with", () => {
  const settings = {
    ...defaultSettings,
    runtime: "sysbox" as const,
    limits: { ...defaultSettings.limits, pids: 3000 },
  };
  const pod = environmentPodSpec(environment, settings, {
    serverUrl,
    stopTimeoutSeconds: 45,
    discardDockerData: true,
    registrySecret: true,
  });
  const secret = environmentSecretSpec(environment, credentials);
  const container = pod.spec?.containers[0] as V1Container;
  const env = kubeletEnvironment(container);
  const decoded = decodePodVariables(env);

  assert.deepEqual(decoded.environment, {
    id: environment.id,
    name: environment.name,
    image: environment.image,
    ownerEmail: environment.ownerEmail,
    buildId: environment.buildId,
    diskGiB: environment.diskGiB,
  });
  assert.equal(decoded.runtime, "sysbox");
  assert.equal(decoded.pidsLimit, 3000);
  assert.equal(decoded.cpuLimitMillis, 1500);
  assert.equal(decoded.memoryLimitMiB, 2560);
  assert.equal(decoded.stopTimeoutSeconds, 45);
  assert.equal(pod.spec?.terminationGracePeriodSeconds, 45);
  assert.equal(decoded.discardDockerData, true);
  assert.equal(
    decoded.reportUrl,
    "http://cvm.cvm.svc:7080/api/v1/environments/env_0123456789abcdef0123/supervisor-report",
  );
  assert.equal(decoded.reportUrl, supervisorReportUrl(serverUrl, environment.id));

  // Directories: the claim's subpaths and the runtime volume, where the spec mounts them; ready where the probe looks.
  const mountOf = (predicate: (m: { name: string; subPath?: string }) => boolean) =>
    container.volumeMounts?.find(predicate)?.mountPath;
  assert.equal(
    decoded.homeDir,
    mountOf((m) => m.name === "home" && m.subPath === "home"),
  );
  assert.equal(
    decoded.dockerDataDir,
    mountOf((m) => m.name === "home" && m.subPath === "docker"),
  );
  assert.equal(
    decoded.runtimeDir,
    mountOf((m) => m.name === "runtime"),
  );
  assert.deepEqual(container.readinessProbe?.exec?.command, ["test", "-e", decoded.readyFile]);
  assert.ok(decoded.readyFile.startsWith(`${decoded.runtimeDir}/`));

  // The report token: the projected service-account token's file, where the kubelet writes it.
  const tokenVolume = pod.spec?.volumes?.find((v) => v.projected?.sources?.some((s) => s.serviceAccountToken));
  const tokenMount = container.volumeMounts?.find((m) => m.name === tokenVolume?.name);
  const tokenPath = tokenVolume?.projected?.sources?.find((s) => s.serviceAccountToken)?.serviceAccountToken?.path;
  assert.equal(decoded.reportTokenFile, `${tokenMount?.mountPath}/${tokenPath}`);

  // Files: the Secret's keys under its mount; read there, they give the agent the credentials.
  const root = mkdtempSync(join(tmpdir(), "cvm-pod-contract-"));
  try {
    const secrets = mountSecret(pod, container, secret, root);
    assert.ok(
      Object.keys(secret.stringData ?? {}).some((key) => decoded.registryAuthFile === `${secrets}/${key}`),
      decoded.registryAuthFile,
    );
    const agent = podEnvironment({ ...env, CVM_REGISTRY_AUTH_FILE: join(root, decoded.registryAuthFile) });
    assert.deepEqual(agent.credentials, credentials);
    assert.equal(agent.environment.cpu, environment.cpu);
    assert.equal(agent.environment.memoryGiB, environment.memoryGiB);
    assert.equal(agent.environment.runtime, "sysbox");
    assert.equal(agent.environment.buildId, environment.buildId);
    assert.equal(agent.settings.runtime, "sysbox");
    assert.equal(agent.settings.limits.pids, 3000, "the admin's process limit");
    assert.equal(agent.environment.diskGiB, environment.diskGiB);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("a Pod spec without a server URL: the agent reports to nobody", () => {
  const pod = environmentPodSpec({ ...environment, buildId: undefined }, defaultSettings);
  const decoded = decodePodVariables(kubeletEnvironment(pod.spec?.containers[0] as V1Container));
  assert.equal(decoded.reportUrl, undefined);
  assert.equal(decoded.environment.buildId, undefined);
  assert.equal(decoded.runtime, "auto");
  assert.equal(decoded.stopTimeoutSeconds, 30);
});

test("the FUSE and TUN settings reach the agent's settings through the Pod; each on unless the Pod says otherwise", () => {
  const agentSettings = (settings: typeof defaultSettings) =>
    podEnvironment(kubeletEnvironment(environmentPodSpec(environment, settings).spec?.containers[0] as V1Container))
      .settings;
  assert.deepEqual([agentSettings(defaultSettings).fuseDevice, agentSettings(defaultSettings).tunDevice], [true, true]);
  const off = agentSettings({ ...defaultSettings, fuseDevice: false, tunDevice: false });
  assert.deepEqual([off.fuseDevice, off.tunDevice], [false, false]);
  const onlyTun = agentSettings({ ...defaultSettings, fuseDevice: false });
  assert.deepEqual([onlyTun.fuseDevice, onlyTun.tunDevice], [false, true]);
  assert.equal(
    decodePodVariables({ CVM_ENVIRONMENT_ID: "e", CVM_ENVIRONMENT_NAME: "n", CVM_IMAGE: "i" }).fuseDevice,
    true,
  );
});

test("the registry credentials file: keyed by the image's registry, and read back as written", () => {
  const file = encodeRegistryAuth(environment.image, credentials);
  assert.deepEqual(Object.keys(JSON.parse(file).auths), ["registry.example.com:5000"]);
  assert.deepEqual(decodeRegistryAuth(file), credentials);
  assert.equal(decodeRegistryAuth(encodeRegistryAuth("debian:12", undefined)), undefined);
  assert.deepEqual(Object.keys(JSON.parse(encodeRegistryAuth("debian:12", credentials)).auths), [
    "https://index.docker.io/v1/",
  ]);
});

test("the probe's verdict fits the kubelet's 4096 bytes, long answers cut first, and reads back", () => {
  const long = "x".repeat(3000);
  const verdict = {
    engineMs: 1,
    runtimes: ["runc"],
    images: [1, 2, 3].map((n) => ({ image: `registry.example/team/img${n}:1`, kind: "other", failure: long })),
  };
  const text = encodeProbeVerdict(verdict);
  assert.ok(Buffer.byteLength(text) <= probeVerdictBytes, `${Buffer.byteLength(text)} bytes`);
  const back = decodeProbeVerdict(text);
  assert.deepEqual(
    back?.images.map((i) => i.image),
    verdict.images.map((i) => i.image),
  );
  assert.match(back?.images[0].failure ?? "", /^x+…$/);
  assert.equal(decodeProbeVerdict("error: unknown command 'probe'"), undefined);
  assert.equal(decodeProbeVerdict('{"not":"a verdict"}'), undefined);
});

test("the probe hands credentials only to the registry they are for", () => {
  const file = encodeRegistryAuth("registry.example:5000/team/app:1", { username: "ada", password: "pw" });
  assert.deepEqual(decodeRegistryAuthFor(file, "registry.example:5000/team/other:2"), {
    username: "ada",
    password: "pw",
  });
  assert.equal(decodeRegistryAuthFor(file, "elsewhere.example/team/app:1"), undefined);
  assert.equal(decodeRegistryAuthFor(file, "debian:bookworm"), undefined, "not Docker Hub's either");
  assert.equal(decodeRegistryAuthFor(undefined, "registry.example:5000/team/app:1"), undefined);
});

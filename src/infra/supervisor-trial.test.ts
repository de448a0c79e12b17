/**
 * The trial Pod's judge, fed the Pod statuses and events a kubelet and a
 * scheduler write in each case (taken from real clusters' wording), and the
 * trial Pod's spec beside the CVM Pod the provider makes. The trial against a
 * real API server is in test/infra/cluster-checks.test.ts; on a real node in
 * test/k8s/real-node.test.ts.
 */

import assert from "node:assert/strict";
import { test } from "node:test";
import type { CoreV1Event, V1ContainerState, V1ContainerStatus, V1Pod } from "@kubernetes/client-node";
import type { CheckStatus } from "../api/contract.js";
import { defaultSettings } from "../core/settings.js";
import { supervisorPodSpec } from "../providers/kubernetes/pod-spec.js";
import { encodeProbeVerdict, type ProbeVerdict } from "../supervisor/pod-contract.js";
import type { Verdict } from "./check.js";
import {
  judgeTrial,
  readTrialPod,
  type TrialEvidence,
  trialPodSpec,
  trialSecretSpec,
  trialSettled,
} from "./supervisor-trial.js";

function expect(verdict: Verdict, status: CheckStatus, evidence: RegExp, remedy?: RegExp) {
  assert.equal(verdict.status, status, verdict.evidence);
  assert.match(verdict.evidence, evidence);
  if (status === "fail") assert.ok(verdict.remedy, "a fail says what to do");
  if (remedy) assert.match(verdict.remedy ?? "", remedy);
}

const base = {
  namespace: "cvm",
  pod: "cvm-trial-1a2b3c4d",
  supervisorImage: "registry.example/cvm/supervisor:1.2.3",
  images: ["registry.example/team/dev:1"],
  seconds: 12.5,
  timeoutSeconds: 120,
  timedOut: false,
};

/** A Pod as the API server returns it, with the supervisor container in `state`. */
function pod(status: NonNullable<V1Pod["status"]>, node?: string): V1Pod {
  return {
    metadata: { name: base.pod, uid: "uid-1" },
    spec: { nodeName: node, containers: [{ name: "supervisor", image: base.supervisorImage }] },
    status,
  };
}

function event(type: string, reason: string, message: string, uid = "uid-1"): CoreV1Event {
  return {
    metadata: {},
    involvedObject: { kind: "Pod", name: base.pod, uid },
    type,
    reason,
    message,
  };
}

const evidence = (p: V1Pod | undefined, events: CoreV1Event[] = [], extra: Partial<TrialEvidence> = {}) => ({
  ...readTrialPod(p, events, base),
  ...extra,
});

/** The supervisor container's status in `state`. */
function supervisor(state: V1ContainerState): V1ContainerStatus {
  return { name: "supervisor", image: base.supervisorImage, imageID: "", ready: false, restartCount: 0, state };
}

function finished(verdict: ProbeVerdict, node = "node-a"): TrialEvidence {
  const message = encodeProbeVerdict(verdict);
  const terminated = { exitCode: 0, reason: "Completed", message };
  return evidence(pod({ phase: "Succeeded", containerStatuses: [supervisor({ terminated })] }, node));
}

function waiting(reason: string, message: string, node = "node-a"): V1Pod {
  return pod({ phase: "Pending", containerStatuses: [supervisor({ waiting: { reason, message } })] }, node);
}

const digest = `sha256:${"ab".repeat(32)}`;

test("pulled and probed: pass, naming the node, the time, the engine and each image's digest", () => {
  const e = finished({
    engineMs: 2300,
    runtimes: ["io.containerd.runc.v2", "runc"],
    images: [{ image: base.images[0], digest }],
  });
  assert.ok(trialSettled(e));
  expect(
    judgeTrial(e),
    "pass",
    /ran on node node-a in 12\.5 s: supervisor image registry\.example\/cvm\/supervisor:1\.2\.3 pulled, engine answered in 2300 ms, runtimes io\.containerd\.runc\.v2, runc; images reached: registry\.example\/team\/dev:1 \(sha256:abababababab\)/,
  );
  const none = judgeTrial(finished({ engineMs: 900, runtimes: ["runc"], images: [] }));
  expect(none, "pass", /no CVM images to ask for/);
});

test("the supervisor image cannot be pulled: fail naming the image and the kubelet's words", () => {
  const message =
    'rpc error: code = NotFound desc = failed to pull and unpack image "registry.example/cvm/supervisor:1.2.3": not found';
  const e = evidence(waiting("ErrImagePull", message), [
    event("Normal", "Scheduled", "Successfully assigned cvm/cvm-trial-1a2b3c4d to node-a"),
    event("Warning", "Failed", "Error: ErrImagePull"),
    event("Warning", "Failed", `Failed to pull image "registry.example/cvm/supervisor:1.2.3": ${message}`),
  ]);
  assert.ok(trialSettled(e), "an image pull error ends the wait");
  expect(
    judgeTrial(e),
    "fail",
    /the node node-a cannot pull the supervisor image registry\.example\/cvm\/supervisor:1\.2\.3: ErrImagePull: Failed to pull image .*not found/,
    /Push the supervisor image .*CVM_SUPERVISOR_IMAGE.*pull secret/,
  );
  const backOff = evidence(waiting("ImagePullBackOff", 'Back-off pulling image "x"'));
  expect(judgeTrial(backOff), "fail", /cannot pull the supervisor image .*ImagePullBackOff: Back-off pulling/);
});

test("a runtime handler the node lacks: fail naming the handler and the node", () => {
  const e = evidence(pod({ phase: "Pending" }, "node-b"), [
    event(
      "Warning",
      "FailedCreatePodSandBox",
      'Failed to create pod sandbox: rpc error: code = Unknown desc = failed to get sandbox runtime: no runtime for "sysbox-runc" is configured',
    ),
  ]);
  assert.ok(trialSettled(e));
  expect(
    judgeTrial(e),
    "fail",
    /the node node-b could not create the Pod's sandbox: its container runtime has no handler "sysbox-runc"/,
    /Install the runtime behind handler "sysbox-runc"/,
  );
  const other = evidence(pod({ phase: "Pending" }, "node-b"), [
    event("Warning", "FailedCreatePodSandBox", "failed to setup network for sandbox: plugin type=bridge failed"),
  ]);
  expect(judgeTrial(other), "fail", /could not create the Pod's sandbox: failed to setup network/, /network plugin/);
});

test("sysbox asked where the supervisor's engine has none: fail naming the runtime and the node", () => {
  const e = finished(
    {
      engineMs: 1800,
      runtimes: ["io.containerd.runc.v2", "runc"],
      runtime:
        "The isolation runtime is set to sysbox, but this node's engine has no sysbox-runc: Engine runtimes: io.containerd.runc.v2, runc.",
      images: [],
    },
    "node-c",
  );
  expect(
    judgeTrial(e),
    "fail",
    /ran on node node-c .*runtimes io\.containerd\.runc\.v2, runc; the isolation runtime is missing on node node-c: .*no sysbox-runc/,
    /Install sysbox .*node-c has none.*auto or userns/,
  );
});

test("no node can take the Pod: fail with the scheduler's message", () => {
  const message = "0/3 nodes are available: 3 Insufficient memory. preemption: 0/3 nodes are available";
  const e = evidence(
    pod({
      phase: "Pending",
      conditions: [{ type: "PodScheduled", status: "False", reason: "Unschedulable", message }],
    }),
    [event("Warning", "FailedScheduling", message)],
  );
  assert.ok(!trialSettled(e), "the scheduler may yet find room: the wait goes on a while");
  expect(judgeTrial(e), "fail", /no node can take it: 0\/3 nodes are available: 3 Insufficient memory/, /Add nodes/);
});

test("a CVM image unreachable from inside the cluster: fail naming the image and the registry's answer", () => {
  const e = finished({
    engineMs: 2000,
    runtimes: ["runc"],
    images: [
      { image: "registry.example/team/dev:1", digest },
      {
        image: "registry.internal:5000/team/private:2",
        kind: "auth",
        failure:
          "Head https://registry.internal:5000/v2/team/private/manifests/2: unauthorized: authentication required",
      },
      {
        image: "nowhere.invalid/x:1",
        kind: "unreachable",
        failure: 'Get "https://nowhere.invalid/v2/": dial tcp: lookup nowhere.invalid: no such host',
      },
    ],
  });
  const verdict = judgeTrial(e);
  expect(
    verdict,
    "fail",
    /image registry\.internal:5000\/team\/private:2 unreachable from inside the cluster: auth: .*unauthorized.*; image nowhere\.invalid\/x:1 unreachable from inside the cluster: unreachable: .*no such host; reached: registry\.example\/team\/dev:1/,
    /A CVM of registry\.internal:5000\/team\/private:2, nowhere\.invalid\/x:1 would fail its pull: give the environment registry credentials.*; let the cluster's nodes reach the registry/,
  );
});

test("the engine does not start in the Pod: fail with the engine's words", () => {
  const e = finished({ images: [], engine: "cvm's container engine did not start: dockerd exited (code 1)" });
  expect(judgeTrial(e), "fail", /the supervisor's engine did not start: cvm's container engine did not start/);
});

test("an image without the probe, or a container that cannot start: fail, saying which", () => {
  const terminated = { exitCode: 1, reason: "Error", message: "error: unknown command 'probe'" };
  const old = evidence(pod({ phase: "Failed", containerStatuses: [supervisor({ terminated })] }, "node-a"));
  expect(
    judgeTrial(old),
    "fail",
    /ended with exit code 1 \(Error\) without the probe's answer: error: unknown command 'probe'/,
    /supervisor image must be the one of this cvm version/,
  );
  const config = evidence(waiting("CreateContainerConfigError", 'secret "cvm-trial-1a2b3c4d" not found'));
  assert.ok(trialSettled(config));
  expect(judgeTrial(config), "fail", /could not be created: CreateContainerConfigError: secret/);
});

test("no answer in time: running, or still pending with its warnings", () => {
  const running = evidence(pod({ phase: "Running" }, "node-a"), [], { timedOut: true, seconds: 120 });
  expect(judgeTrial(running), "fail", /ran on node node-a for 120 s without answering within the 120 s/);
  const pending = evidence(pod({ phase: "Pending" }, "node-a"), [event("Warning", "FailedMount", "timed out")], {
    timedOut: true,
  });
  expect(judgeTrial(pending), "fail", /still Pending on node node-a after 12\.5 s: FailedMount: timed out/);
  const interrupted = evidence(pod({ phase: "Running" }, "node-a"), [], { interrupted: true });
  expect(judgeTrial(interrupted), "fail", /deleted after 12\.5 s: the checks were interrupted/);
  const gone = evidence(undefined, [], { vanished: true });
  expect(judgeTrial(gone), "fail", /was deleted by someone else/);
});

test("a dry run refused: the trial is not applicable, with the reason", () => {
  const e = evidence(undefined, [], {
    skipped: 'the namespace refuses the supervisor Pod: violates PodSecurity "baseline:latest"',
  });
  expect(
    judgeTrial(e),
    "not-applicable",
    /^no trial Pod: the namespace refuses the supervisor Pod: violates PodSecurity/,
  );
});

test("events of an earlier Pod of the same name are not this trial's", () => {
  const e = evidence(waiting("ContainerCreating", ""), [event("Warning", "FailedCreatePodSandBox", "old", "uid-0")]);
  assert.equal(e.events.length, 0);
  assert.ok(!trialSettled(e));
});

test("the trial Pod is the provider's CVM Pod, with the probe for a command, no claim, and trial labels", () => {
  const settings = { ...defaultSettings, runtime: "sysbox" as const };
  const request = {
    id: "trial-1a2b3c4d",
    images: ["registry.example/team/dev:1", "registry.example/team/other:2"],
    timeoutSeconds: 120,
    installationId: "inst-1",
    podOptions: { supervisorImage: base.supervisorImage, insecureRegistries: ["registry.internal:5000"] },
    registrySecret: true,
  };
  const trial = trialPodSpec(settings, request);
  const cvm = supervisorPodSpec(
    {
      id: request.id,
      name: "cvm-trial",
      image: request.images[0],
      cvm: true,
      cpu: 0.5,
      memoryGiB: 0.5,
      diskGiB: 1,
      ownerEmail: "doctor@cvm.invalid",
    },
    settings,
    { ...request.podOptions, registrySecret: true, stopTimeoutSeconds: 5 },
  );
  const [container] = trial.spec?.containers ?? [];
  const [cvmContainer] = cvm.spec?.containers ?? [];
  assert.deepEqual(container.command, [
    "cvm",
    "supervisor",
    "probe",
    "--",
    "registry.example/team/dev:1",
    "registry.example/team/other:2",
  ]);
  assert.equal(container.readinessProbe, undefined);
  // What decides whether a CVM's Pod runs is the same: image, security, variables, mounts, resources.
  for (const field of ["image", "securityContext", "env", "volumeMounts", "resources"] as const) {
    assert.deepEqual(container[field], cvmContainer[field], field);
  }
  assert.ok(
    container.env?.some((v) => v.name === "CVM_RUNTIME" && v.value === "sysbox"),
    "the runtime asked for travels as a CVM's does",
  );
  assert.ok(container.env?.some((v) => v.name === "CVM_INSECURE_REGISTRIES" && v.value === "registry.internal:5000"));
  assert.deepEqual(
    trial.spec?.volumes?.find((v) => v.name === "home"),
    { name: "home", emptyDir: {} },
    "a trial has no home claim",
  );
  assert.deepEqual(
    trial.spec?.volumes?.filter((v) => v.name !== "home"),
    cvm.spec?.volumes?.filter((v) => v.name !== "home"),
  );
  assert.equal(trial.metadata?.name, "cvm-trial-1a2b3c4d");
  assert.deepEqual(trial.metadata?.labels, { "dev.cvm/trial": "true", "dev.cvm/installation": "inst-1" });
  assert.equal(trial.spec?.activeDeadlineSeconds, 150, "the kubelet ends a trial nobody deletes");
  const secret = trialSecretSpec(settings, request, { username: "ada", password: "pw" });
  assert.equal(secret.metadata?.name, trial.metadata?.name, "the Secret is named as the Pod, found through it");
  assert.deepEqual(secret.metadata?.labels, trial.metadata?.labels);
  assert.match(secret.stringData?.[".dockerconfigjson"] ?? "", /"registry\.example":\{"username":"ada"/);
});

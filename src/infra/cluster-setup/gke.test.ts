import assert from "node:assert/strict";
import { test } from "node:test";
import { CvmError } from "../../core/errors.js";
import { type GkeRequest, planGke } from "./gke.js";

// The seed's own example: a GKE cluster at 1.17 with Ubuntu nodes.
const seedExample: GkeRequest = {
  name: "my-cluster",
  zone: "us-central1-a",
  project: "my-project",
  version: "1.17.14-gke.1600",
  nodeVersion: "1.17.14-gke.1600",
  nodes: 3,
  machineType: "e2-standard-4",
  imageType: "UBUNTU",
  runtime: "sysbox",
};

/** The command's flags as a map (the command is split over lines with `\`). */
function flags(command: string): Map<string, string> {
  const words = command.replace(/\\\n/g, " ").split(/\s+/).filter(Boolean);
  const found = new Map<string, string>();
  words.forEach((word, i) => {
    if (word.startsWith("--")) found.set(word, words[i + 1]?.startsWith("--") ? "" : (words[i + 1] ?? ""));
  });
  return found;
}

function refusal(request: GkeRequest): CvmError {
  try {
    planGke(request);
  } catch (error) {
    assert.ok(error instanceof CvmError);
    return error;
  }
  assert.fail("the request was not refused");
}

test("the seed's example: clusters create at 1.17 with image type UBUNTU", () => {
  const plan = planGke(seedExample);
  const [create, credentials] = plan.commands;
  assert.match(create, /^gcloud container clusters create my-cluster/);
  const f = flags(create);
  assert.equal(f.get("--image-type"), "UBUNTU");
  assert.equal(f.get("--cluster-version"), "1.17.14-gke.1600");
  assert.equal(f.get("--node-version"), "1.17.14-gke.1600");
  assert.equal(f.get("--zone"), "us-central1-a");
  assert.equal(f.get("--project"), "my-project");
  assert.equal(f.get("--num-nodes"), "3");
  assert.equal(f.get("--machine-type"), "e2-standard-4");
  assert.equal(f.get("--node-labels"), "sysbox-install=yes");
  assert.equal(f.get("--release-channel"), "None");
  assert.ok(f.has("--no-enable-autoupgrade"));
  assert.match(credentials, /^gcloud container clusters get-credentials my-cluster/);
  assert.ok(plan.nodeSteps.some((s) => s.includes("kubectl apply -f") && s.includes("sysbox-install.yaml")));
});

test("a node pool in an existing cluster: node-pools create with UBUNTU_CONTAINERD", () => {
  const plan = planGke({
    ...seedExample,
    version: undefined,
    nodeVersion: "1.29.1-gke.1589017",
    imageType: "UBUNTU_CONTAINERD",
    nodePool: "cvm",
    runtime: "userns",
  });
  const f = flags(plan.commands[0]);
  assert.match(plan.commands[0], /^gcloud container node-pools create cvm/);
  assert.equal(f.get("--cluster"), "my-cluster");
  assert.equal(f.get("--image-type"), "UBUNTU_CONTAINERD");
  assert.equal(f.get("--node-version"), "1.29.1-gke.1589017");
  assert.equal(f.has("--node-labels"), false, "the built-in runtime needs nothing on the nodes");
  assert.deepEqual(plan.nodeSteps, []);
});

test("refused: master or node version 1.16, with the reason", () => {
  const error = refusal({ ...seedExample, version: "1.16.15-gke.4901", nodeVersion: "1.16.15-gke.4901" });
  assert.match(error.message, /cannot host CVMs/);
  assert.deepEqual(
    error.validations?.map((v) => v.field),
    ["version", "nodeVersion"],
  );
  assert.match(error.message, /GKE master version 1\.16\.15-gke\.4901 is older than 1\.17/);
  assert.match(error.message, /GKE node version 1\.16\.15-gke\.4901 is older than 1\.17/);
});

test("refused: image types that are not Ubuntu, Docker-based UBUNTU past 1.24, nodes newer than master", () => {
  assert.match(
    refusal({ ...seedExample, imageType: "COS_CONTAINERD" }).message,
    /image type COS_CONTAINERD is not Ubuntu/,
  );
  assert.match(
    refusal({ ...seedExample, version: "1.29", nodeVersion: "1.29", imageType: "UBUNTU" }).message,
    /UBUNTU \(Docker-based\) ended with GKE 1\.24: use UBUNTU_CONTAINERD/,
  );
  assert.match(
    refusal({ ...seedExample, version: "1.28.3", nodeVersion: "1.29.1", imageType: "UBUNTU_CONTAINERD" }).message,
    /nodes cannot be newer than their master/,
  );
  assert.match(refusal({ ...seedExample, zone: undefined }).message, /exactly one of --zone/);
  assert.match(refusal({ ...seedExample, version: "one" }).message, /"one" is not a GKE version/);
  assert.match(refusal({ ...seedExample, nodes: 0 }).message, /at least 1/);
});

test("latest and the defaults pass", () => {
  const plan = planGke({ ...seedExample, version: "latest", nodeVersion: undefined, imageType: "UBUNTU_CONTAINERD" });
  assert.equal(flags(plan.commands[0]).get("--cluster-version"), "latest");
});

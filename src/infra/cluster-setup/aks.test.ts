import assert from "node:assert/strict";
import { test } from "node:test";
import { CvmError } from "../../core/errors.js";
import { type AksRequest, planAks } from "./aks.js";

const request: AksRequest = {
  name: "cvm-cluster",
  resourceGroup: "platform",
  region: "westeurope",
  version: "1.18.19",
  nodes: 3,
  vmSize: "Standard_D4s_v5",
  osSku: "Ubuntu",
  runtime: "sysbox",
};

function refusal(r: AksRequest): CvmError {
  try {
    planAks(r);
  } catch (error) {
    assert.ok(error instanceof CvmError);
    return error;
  }
  assert.fail("the request was not refused");
}

test("az aks create at 1.18 with Ubuntu nodes, labeled for sysbox", () => {
  const plan = planAks(request);
  const create = plan.commands[0].replace(/\\\n\s*/g, "");
  assert.match(create, /^az aks create --resource-group platform --name cvm-cluster --location westeurope /);
  assert.match(create, /--kubernetes-version 1\.18\.19 /);
  assert.match(create, /--node-count 3 --node-vm-size Standard_D4s_v5 --os-sku Ubuntu /);
  assert.match(create, /--nodepool-labels sysbox-install=yes/);
  assert.match(plan.commands[1], /^az aks get-credentials/);
  assert.ok(plan.nodeSteps.length > 0);
});

test("the built-in runtime: AzureLinux nodes are fine and nothing is installed on them", () => {
  const plan = planAks({ ...request, osSku: "AzureLinux", runtime: "userns", version: undefined });
  assert.doesNotMatch(plan.commands[0], /nodepool-labels|kubernetes-version/);
  assert.deepEqual(plan.nodeSteps, []);
});

test("refused: AKS 1.17, non-Ubuntu under sysbox, Windows", () => {
  const old = refusal({ ...request, version: "1.17.16" });
  assert.match(old.message, /AKS 1\.17\.16 is older than 1\.18/);
  assert.deepEqual(
    old.validations?.map((v) => v.field),
    ["version"],
  );
  assert.match(
    refusal({ ...request, osSku: "AzureLinux" }).message,
    /AzureLinux is not Ubuntu, and sysbox needs Ubuntu/,
  );
  assert.match(refusal({ ...request, osSku: "Windows2022", runtime: "userns" }).message, /is Windows/);
});

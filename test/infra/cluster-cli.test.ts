/**
 * `cvm cluster gke|eks|aks` as a user runs it: the real bin/cvm, files on
 * disk, exit codes and the reasons printed for refusals.
 */

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { promisify } from "node:util";
import { parse } from "yaml";
import { compiledCvm, cvmBin as cvm } from "../harness/cli.js";

const run = promisify(execFile);
before(() => compiledCvm());
const dir = mkdtempSync(join(tmpdir(), "cvm-cluster-cli-"));
after(() => rmSync(dir, { recursive: true, force: true }));

async function cluster(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const result = await run(cvm, ["cluster", ...args], { cwd: dir, timeout: 60_000 }).catch((error) => error);
  return { code: typeof result.code === "number" ? result.code : 0, stdout: result.stdout, stderr: result.stderr };
}

test("cvm cluster gke prints the gcloud command with an Ubuntu image type", async () => {
  const { code, stdout } = await cluster(
    "gke",
    "--name",
    "my-cluster",
    "--zone",
    "us-central1-a",
    "--version",
    "1.17.14-gke.1600",
    "--node-version",
    "1.17.14-gke.1600",
    "--image-type",
    "UBUNTU",
  );
  assert.equal(code, 0);
  assert.match(stdout, /^gcloud container clusters create my-cluster \\$/m);
  assert.match(stdout, /--image-type UBUNTU \\$/m);
  assert.match(stdout, /--node-version 1\.17\.14-gke\.1600 \\$/m);
});

test("cvm cluster gke refuses 1.16 and says why", async () => {
  const { code, stderr } = await cluster("gke", "--name", "c", "--zone", "z", "--node-version", "1.16.15-gke.4901");
  assert.equal(code, 1);
  assert.match(stderr, /cannot host CVMs: nodeVersion: GKE node version 1\.16\.15-gke\.4901 is older than 1\.17/);
});

test("cvm cluster eks --config extends the user's file in place, keeping its comments", async () => {
  const path = join(dir, "team.yaml");
  writeFileSync(
    path,
    "# ours\napiVersion: eksctl.io/v1alpha5\nkind: ClusterConfig\nmetadata:\n  name: team\n  region: eu-west-1 # Ireland\nnodeGroups:\n  - name: general\n    instanceType: m5.large\n",
  );
  const { code, stdout } = await cluster("eks", "--config", path, "--runtime", "sysbox");
  assert.equal(code, 0);
  assert.match(stdout, new RegExp(`# wrote ${path}`));
  assert.match(stdout, /eksctl create nodegroup -f \S+team\.yaml --include=cvm/);
  assert.match(stdout, /sysbox-install\.yaml/);
  const text = readFileSync(path, "utf8");
  assert.ok(text.startsWith("# ours\n") && text.includes("region: eu-west-1 # Ireland"), text);
  const config = parse(text) as { nodeGroups: { name: string; amiFamily?: string }[] };
  assert.deepEqual(
    config.nodeGroups.map((g) => [g.name, g.amiFamily]),
    [
      ["general", undefined],
      ["cvm", "Ubuntu2204"],
    ],
  );
});

test("cvm cluster eks refuses Ubuntu1604 and writes nothing", async () => {
  const { code, stderr } = await cluster("eks", "--name", "old", "--region", "us-east-1", "--ami-family", "Ubuntu1604");
  assert.equal(code, 1);
  assert.match(stderr, /amiFamily Ubuntu1604 is older than Ubuntu1804/);
  assert.throws(() => readFileSync(join(dir, "old.eksctl.yaml")), /ENOENT/);
});

test("cvm cluster aks --json gives the plan; AKS 1.17 is refused", async () => {
  const ok = await cluster("aks", "--name", "c", "--resource-group", "rg", "--version", "1.29.2", "--json");
  assert.equal(ok.code, 0);
  const plan = JSON.parse(ok.stdout) as { cloud: string; commands: string[] };
  assert.equal(plan.cloud, "aks");
  assert.match(plan.commands[0], /^az aks create/);
  const old = await cluster("aks", "--name", "c", "--resource-group", "rg", "--version", "1.17.16");
  assert.equal(old.code, 1);
  assert.match(old.stderr, /AKS 1\.17\.16 is older than 1\.18/);
});

import assert from "node:assert/strict";
import { test } from "node:test";
import { parse, parseDocument } from "yaml";
import { CvmError } from "../../core/errors.js";
import { type EksRequest, planEks } from "./eks.js";

// The seed's own example: an eksctl ClusterConfig whose node group runs Ubuntu1804.
const seedExample: EksRequest = {
  name: "coder-trial",
  region: "us-east-1",
  amiFamily: "Ubuntu1804",
  runtime: "sysbox",
  nodeGroup: "cvm",
  path: "cluster.yaml",
};

interface NodeGroup {
  name: string;
  amiFamily?: string;
  instanceType?: string;
  desiredCapacity?: number;
  labels?: Record<string, string>;
}

interface ClusterConfig {
  apiVersion: string;
  kind: string;
  metadata: Record<string, unknown>;
  iam?: unknown;
  vpc?: unknown;
  nodeGroups: NodeGroup[];
  managedNodeGroups?: NodeGroup[];
}

function config(request: EksRequest) {
  const plan = planEks(request);
  const text = plan.files[0].content;
  return { plan, text, parsed: parse(text) as ClusterConfig };
}

function refusal(request: EksRequest): CvmError {
  try {
    planEks(request);
  } catch (error) {
    assert.ok(error instanceof CvmError);
    return error;
  }
  assert.fail("the request was not refused");
}

test("the seed's example: a ClusterConfig that parses, with an Ubuntu1804 node group", () => {
  const { plan, parsed } = config(seedExample);
  assert.equal(parsed.apiVersion, "eksctl.io/v1alpha5");
  assert.equal(parsed.kind, "ClusterConfig");
  assert.deepEqual(parsed.metadata, { name: "coder-trial", region: "us-east-1" });
  const group = (parsed.nodeGroups as NodeGroup[]).find((g) => g.name === "cvm")!;
  assert.equal(group.amiFamily, "Ubuntu1804");
  assert.equal(group.desiredCapacity, 2);
  assert.deepEqual(group.labels, { "sysbox-install": "yes" }, "a string, also to eksctl's YAML 1.1");
  assert.match(plan.files[0].content, /sysbox-install: "yes"/);
  assert.deepEqual(plan.commands, ["eksctl create cluster -f cluster.yaml"]);
  assert.ok(plan.nodeSteps.some((s) => s.includes("sysbox-deploy-k8s")));
});

test("newer Ubuntu families and the default (Ubuntu2204) are accepted; the version is written as a string", () => {
  for (const amiFamily of ["Ubuntu2004", "Ubuntu2204", "UbuntuPro2404"]) {
    assert.equal(config({ ...seedExample, amiFamily }).parsed.nodeGroups[0].amiFamily, amiFamily);
  }
  const { parsed, text } = config({ ...seedExample, amiFamily: undefined, version: "1.29", runtime: "userns" });
  assert.equal(parsed.nodeGroups[0].amiFamily, "Ubuntu2204");
  assert.equal(parsed.metadata.version, "1.29");
  assert.match(text, /version: "1\.29"/);
  assert.equal(parsed.nodeGroups[0].labels, undefined, "the built-in runtime labels nothing");
});

test("refused: Ubuntu1604 and Kubernetes 1.16, with the reasons", () => {
  const old = refusal({ ...seedExample, amiFamily: "Ubuntu1604" });
  assert.match(old.message, /amiFamily Ubuntu1604 is older than Ubuntu1804/);
  assert.deepEqual(
    old.validations?.map((v) => v.field),
    ["amiFamily"],
  );
  const oldKube = refusal({ ...seedExample, version: "1.16" });
  assert.match(oldKube.message, /Kubernetes 1\.16 is older than 1\.17/);
});

test("refused: non-Ubuntu families under sysbox (fine for the built-in runtime), Windows, unknown", () => {
  assert.match(
    refusal({ ...seedExample, amiFamily: "AmazonLinux2023" }).message,
    /AmazonLinux2023 is not Ubuntu, and sysbox needs Ubuntu nodes/,
  );
  assert.equal(
    config({ ...seedExample, amiFamily: "AmazonLinux2023", runtime: "userns" }).parsed.nodeGroups[0].amiFamily,
    "AmazonLinux2023",
  );
  assert.match(refusal({ ...seedExample, amiFamily: "WindowsServer2022FullContainer" }).message, /is Windows/);
  assert.match(refusal({ ...seedExample, amiFamily: "Gentoo" }).message, /not one eksctl knows/);
  assert.match(refusal({ ...seedExample, name: undefined }).message, /the cluster's name/);
});

const existing = `# The platform team's cluster. Do not remove the OIDC provider.
apiVersion: eksctl.io/v1alpha5
kind: ClusterConfig
metadata:
  name: team # short, it shows in every ARN
  region: eu-west-1
  version: "1.28"
  tags:
    cost-center: "42"
iam:
  withOIDC: true
vpc:
  cidr: 10.10.0.0/16
nodeGroups:
  # general workloads, on Amazon Linux
  - name: general
    amiFamily: AmazonLinux2
    instanceType: m5.large
    desiredCapacity: 3
managedNodeGroups:
  - name: system
    instanceType: t3.medium
`;

test("an existing config keeps every other field and comment, and gains the cvm node group", () => {
  const { plan, parsed, text } = config({ runtime: "sysbox", nodeGroup: "cvm", existing, path: "team.yaml" });
  for (const comment of [
    "# The platform team's cluster. Do not remove the OIDC provider.",
    "name: team # short, it shows in every ARN",
    "# general workloads, on Amazon Linux",
  ]) {
    assert.ok(text.includes(comment), `kept: ${comment}\n${text}`);
  }
  assert.deepEqual(parsed.metadata, {
    name: "team",
    region: "eu-west-1",
    version: "1.28",
    tags: { "cost-center": "42" },
  });
  assert.deepEqual(parsed.iam, { withOIDC: true });
  assert.deepEqual(parsed.vpc, { cidr: "10.10.0.0/16" });
  assert.deepEqual(parsed.managedNodeGroups, [{ name: "system", instanceType: "t3.medium" }]);
  const groups = parsed.nodeGroups as NodeGroup[];
  assert.deepEqual(groups[0], {
    name: "general",
    amiFamily: "AmazonLinux2",
    instanceType: "m5.large",
    desiredCapacity: 3,
  });
  assert.deepEqual(groups[1], {
    name: "cvm",
    amiFamily: "Ubuntu2204",
    instanceType: "m5.xlarge",
    desiredCapacity: 2,
    labels: { "sysbox-install": "yes" },
  });
  assert.deepEqual(plan.commands, ["eksctl create nodegroup -f team.yaml --include=cvm"]);
  // The result is itself a config cvm can extend again without change.
  assert.equal(
    planEks({ runtime: "sysbox", nodeGroup: "cvm", existing: text, path: "team.yaml" }).files[0].content,
    text,
  );
});

test("an existing cvm group that cannot host CVMs is fixed; one that can is kept", () => {
  const withGroup =
    `${existing}  - name: cvm # ours
    amiFamily: Ubuntu1604
    instanceType: c5.4xlarge
`.replace("managedNodeGroups:\n  - name: system\n    instanceType: t3.medium\n", "") +
    "managedNodeGroups:\n  - name: system\n    instanceType: t3.medium\n";
  const doc = parseDocument(withGroup);
  assert.equal(doc.errors.length, 0, String(doc.errors[0]));
  const { plan, parsed, text } = config({
    runtime: "userns",
    nodeGroup: "cvm",
    existing: withGroup,
    path: "team.yaml",
  });
  const group = (parsed.nodeGroups as NodeGroup[]).find((g) => g.name === "cvm")!;
  assert.equal(group.amiFamily, "Ubuntu2204");
  assert.equal(group.instanceType, "c5.4xlarge", "the user's instance type stays");
  assert.ok(text.includes("- name: cvm # ours"));
  assert.ok(plan.notes.some((n) => n.includes("amiFamily Ubuntu1604 becomes Ubuntu2204")));
  assert.equal((parsed.nodeGroups as NodeGroup[]).filter((g) => g.name === "cvm").length, 1);

  const good = withGroup.replace("Ubuntu1604", "Ubuntu2004");
  assert.equal(
    config({ runtime: "userns", nodeGroup: "cvm", existing: good, path: "t.yaml" }).parsed.nodeGroups[1].amiFamily,
    "Ubuntu2004",
  );
});

test("an existing config at 1.16 is refused unless a version is given; not YAML or not eksctl is refused", () => {
  const old = existing.replace('version: "1.28"', 'version: "1.16"');
  assert.match(
    refusal({ runtime: "userns", nodeGroup: "cvm", existing: old, path: "t.yaml" }).message,
    /1\.16 is older than 1\.17/,
  );
  const fixed = config({ runtime: "userns", nodeGroup: "cvm", existing: old, path: "t.yaml", version: "1.29" });
  assert.equal(fixed.parsed.metadata.version, "1.29");
  assert.match(refusal({ runtime: "userns", nodeGroup: "cvm", existing: "a: [", path: "t.yaml" }).message, /not YAML/);
  assert.match(
    refusal({ runtime: "userns", nodeGroup: "cvm", existing: "apiVersion: v1\nkind: Pod\n", path: "t.yaml" }).message,
    /apiVersion is v1/,
  );
});

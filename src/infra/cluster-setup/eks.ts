/**
 * EKS: an eksctl ClusterConfig whose CVM node group runs Ubuntu (amiFamily
 * Ubuntu1804 or newer, as the seed's example). Given the user's own config it
 * keeps every other field and comment and only adds or fixes cvm's group.
 */

import { Document, isMap, isSeq, parseDocument, Scalar, type YAMLMap, type YAMLSeq } from "yaml";
import { CvmError } from "../../core/errors.js";
import type { RuntimeChoice } from "../../core/settings.js";
import { atLeast, type Version, version } from "../versions.js";
import { type ClusterPlan, needsSysbox, notAVersion, olderThan, type Refusal, refuse } from "./plan.js";
import { sysboxNodeSteps } from "./sysbox.js";

export interface EksRequest {
  name?: string;
  region?: string;
  /** metadata.version; eksctl's default when absent. */
  version?: string;
  nodes?: number;
  instanceType?: string;
  /** The node group's amiFamily; Ubuntu2204, or the existing group's when it can host CVMs, when absent. */
  amiFamily?: string;
  runtime: RuntimeChoice;
  nodeGroup: string;
  /** The user's ClusterConfig, to keep and extend. */
  existing?: string;
  /** Where the ClusterConfig is to be saved. */
  path: string;
}

export const defaultAmiFamily = "Ubuntu2204";
export const defaultInstanceType = "m5.xlarge";
const defaultNodes = 2;

const ubuntuFamily = /^Ubuntu(?:Pro)?(\d{2})(\d{2})$/;
const knownFamily = /^(?:Ubuntu(?:Pro)?\d{4}|AmazonLinux2|AmazonLinux2023|Bottlerocket|WindowsServer\w+)$/;

/** Ubuntu1804 → 18.04; undefined for families that are not Ubuntu. */
export function ubuntuRelease(amiFamily: string): Version | undefined {
  const match = ubuntuFamily.exec(amiFamily);
  return match ? version(`${Number(match[1])}.${match[2]}`) : undefined;
}

/** What the refusals judge: the request with the existing file's values filled in. */
interface EffectiveRequest {
  name?: string;
  region?: string;
  version?: string;
  amiFamily: string;
  nodes: number;
  runtime: RuntimeChoice;
}

const oldestUbuntu = version("18.04");
const minimum = version("1.17");

export const amiFamilyRefusals: Refusal<Pick<EffectiveRequest, "amiFamily" | "runtime">>[] = [
  {
    field: "amiFamily",
    refuses: (r) => !knownFamily.test(r.amiFamily),
    reason: (r) => `amiFamily ${r.amiFamily} is not one eksctl knows (Ubuntu2204, Ubuntu2004, Ubuntu1804, ...)`,
  },
  {
    field: "amiFamily",
    refuses: (r) => {
      const release = ubuntuRelease(r.amiFamily);
      return release !== undefined && !atLeast(release, oldestUbuntu);
    },
    reason: (r) =>
      `amiFamily ${r.amiFamily} is older than Ubuntu1804: its kernel cannot host CVMs (5.4 or newer needed)`,
  },
  {
    field: "amiFamily",
    refuses: (r) => r.amiFamily.startsWith("WindowsServer"),
    reason: (r) => `amiFamily ${r.amiFamily} is Windows: CVMs run on Linux nodes`,
  },
  {
    field: "amiFamily",
    refuses: (r) =>
      needsSysbox(r.runtime) &&
      knownFamily.test(r.amiFamily) &&
      !r.amiFamily.startsWith("Windows") &&
      !ubuntuRelease(r.amiFamily),
    reason: (r) =>
      `amiFamily ${r.amiFamily} is not Ubuntu, and sysbox needs Ubuntu nodes (Ubuntu2204), or choose the built-in runtime`,
  },
];

export const eksRefusals: Refusal<EffectiveRequest>[] = [
  {
    field: "name",
    refuses: (r) => !r.name,
    reason: () => "give the cluster's name (--name, or metadata.name in --config)",
  },
  {
    field: "region",
    refuses: (r) => !r.region,
    reason: () => "give the region (--region, or metadata.region in --config)",
  },
  {
    field: "version",
    refuses: (r) => notAVersion(r.version),
    reason: (r) => `"${r.version}" is not a Kubernetes version (such as 1.29)`,
  },
  {
    field: "version",
    refuses: (r) => olderThan(r.version, minimum),
    reason: (r) => `Kubernetes ${r.version} is older than 1.17, the oldest that hosts CVMs`,
  },
  ...amiFamilyRefusals,
  {
    field: "nodes",
    refuses: (r) => !Number.isInteger(r.nodes) || r.nodes < 1,
    reason: (r) => `node count ${r.nodes} must be a whole number of at least 1`,
  },
];

function refusesFamily(amiFamily: unknown, runtime: RuntimeChoice): boolean {
  return typeof amiFamily !== "string" || amiFamilyRefusals.some((rule) => rule.refuses({ amiFamily, runtime }));
}

function parseExisting(text: string): Document {
  const doc = parseDocument(text);
  if (doc.errors.length > 0) {
    throw new CvmError("BAD_REQUEST", `The existing config is not YAML: ${doc.errors[0].message}`);
  }
  const apiVersion = doc.get("apiVersion");
  const kind = doc.get("kind");
  if (apiVersion !== undefined && !String(apiVersion).startsWith("eksctl.io/")) {
    throw new CvmError("BAD_REQUEST", `The existing config's apiVersion is ${apiVersion}, not eksctl.io/v1alpha5`);
  }
  if (kind !== undefined && kind !== "ClusterConfig") {
    throw new CvmError("BAD_REQUEST", `The existing config's kind is ${kind}, not ClusterConfig`);
  }
  return doc;
}

/** The node group named `name` in nodeGroups or managedNodeGroups, if the file has one. */
function findGroup(doc: Document, name: string): YAMLMap | undefined {
  for (const key of ["nodeGroups", "managedNodeGroups"]) {
    const groups = doc.get(key);
    if (!isSeq(groups)) continue;
    const found = groups.items.find((item) => isMap(item) && item.get("name") === name);
    if (found) return found as YAMLMap;
  }
  return undefined;
}

export function planEks(request: EksRequest): ClusterPlan {
  const doc = request.existing !== undefined ? parseExisting(request.existing) : new Document({});
  const notes: string[] = [];
  const group = findGroup(doc, request.nodeGroup);
  const existingFamily = group?.get("amiFamily");
  const keepFamily = request.amiFamily === undefined && !refusesFamily(existingFamily, request.runtime);
  const amiFamily = request.amiFamily ?? (keepFamily ? String(existingFamily) : defaultAmiFamily);
  if (group && existingFamily !== undefined && existingFamily !== amiFamily) {
    notes.push(
      `node group ${request.nodeGroup}: amiFamily ${existingFamily} becomes ${amiFamily} (it cannot host CVMs)`,
    );
  }
  const version = request.version ?? stringOrUndefined(doc.getIn(["metadata", "version"]));
  const effective: EffectiveRequest = {
    name: request.name ?? stringOrUndefined(doc.getIn(["metadata", "name"])),
    region: request.region ?? stringOrUndefined(doc.getIn(["metadata", "region"])),
    version,
    amiFamily,
    nodes: request.nodes ?? numberOrUndefined(group?.get("desiredCapacity")) ?? defaultNodes,
    runtime: request.runtime,
  };
  refuse(eksRefusals, effective, "EKS cluster");

  if (request.existing === undefined) {
    doc.set("apiVersion", "eksctl.io/v1alpha5");
    doc.set("kind", "ClusterConfig");
    doc.commentBefore = " An EKS cluster that can host CVMs, written by `cvm cluster eks`.";
  }
  doc.setIn(["metadata", "name"], effective.name);
  doc.setIn(["metadata", "region"], effective.region);
  if (request.version !== undefined) doc.setIn(["metadata", "version"], request.version);

  const sysbox = needsSysbox(request.runtime);
  const fields: [string, unknown][] = [
    ["amiFamily", amiFamily],
    ["instanceType", request.instanceType ?? group?.get("instanceType") ?? defaultInstanceType],
    ["desiredCapacity", effective.nodes],
  ];
  if (group) {
    for (const [key, value] of fields) group.set(key, value);
    if (sysbox) group.setIn(["labels", "sysbox-install"], quoted("yes"));
  } else {
    const added = doc.createNode({
      name: request.nodeGroup,
      ...Object.fromEntries(fields),
      ...(sysbox ? { labels: { "sysbox-install": quoted("yes") } } : {}),
    });
    added.commentBefore = " cvm: nodes that host CVMs (Ubuntu, kernel 5.4 or newer)";
    const groups = doc.get("nodeGroups");
    if (isSeq(groups)) (groups as YAMLSeq).add(added);
    else doc.set("nodeGroups", doc.createNode([added]));
    notes.push(`added node group ${request.nodeGroup} (${amiFamily})`);
  }

  const command =
    request.existing === undefined
      ? `eksctl create cluster -f ${request.path}`
      : `eksctl create nodegroup -f ${request.path} --include=${request.nodeGroup}`;
  if (request.existing !== undefined) {
    notes.push(
      `the cluster in ${request.path} may already exist: the command adds the node group; a new cluster takes eksctl create cluster -f ${request.path}`,
    );
  }
  return {
    cloud: "eks",
    files: [{ path: request.path, content: doc.toString() }],
    commands: [command],
    nodeSteps: sysbox ? sysboxNodeSteps(`alpha.eksctl.io/nodegroup-name=${request.nodeGroup}`, true) : [],
    notes,
  };
}

/** eksctl reads YAML 1.1, where a bare `yes` is a boolean: label values stay quoted strings. */
function quoted(value: string): Scalar {
  const scalar = new Scalar(value);
  scalar.type = Scalar.QUOTE_DOUBLE;
  return scalar;
}

function stringOrUndefined(value: unknown): string | undefined {
  return value === undefined || value === null ? undefined : String(value);
}

function numberOrUndefined(value: unknown): number | undefined {
  return typeof value === "number" ? value : undefined;
}

/**
 * GKE: a cluster (or a node pool in an existing one) with Ubuntu nodes. The
 * seed's rules: master and node versions at least 1.17, image type UBUNTU
 * (UBUNTU_CONTAINERD since GKE stopped offering Docker-based images in 1.24).
 */

import type { RuntimeChoice } from "../../core/settings.js";
import { compareVersions, parseVersion, version } from "../versions.js";
import { type ClusterPlan, needsSysbox, notAVersion, olderThan, type Refusal, refuse, shellCommand } from "./plan.js";
import { sysboxInstallLabel, sysboxNodeSteps } from "./sysbox.js";

export interface GkeRequest {
  name: string;
  zone?: string;
  region?: string;
  project?: string;
  /** The master's version (`--cluster-version`); GKE's default when absent. */
  version?: string;
  nodeVersion?: string;
  nodes: number;
  machineType: string;
  imageType: string;
  runtime: RuntimeChoice;
  /** Add a node pool of this name to the existing cluster `name` instead of creating a cluster. */
  nodePool?: string;
}

export const gkeImageTypes = ["UBUNTU_CONTAINERD", "UBUNTU"];
const versionAliases = ["latest", "-"];
const minimum = version("1.17");
const dockerImagesEnd = version("1.24");

export const gkeRefusals: Refusal<GkeRequest>[] = [
  {
    field: "version",
    refuses: (r) => notAVersion(r.version, versionAliases),
    reason: (r) => `"${r.version}" is not a GKE version (such as 1.29 or 1.29.1-gke.1589017)`,
  },
  {
    field: "version",
    refuses: (r) => olderThan(r.version, minimum, versionAliases),
    reason: (r) => `GKE master version ${r.version} is older than 1.17, the oldest that hosts CVMs`,
  },
  {
    field: "nodeVersion",
    refuses: (r) => notAVersion(r.nodeVersion, versionAliases),
    reason: (r) => `"${r.nodeVersion}" is not a GKE version`,
  },
  {
    field: "nodeVersion",
    refuses: (r) => olderThan(r.nodeVersion, minimum, versionAliases),
    reason: (r) => `GKE node version ${r.nodeVersion} is older than 1.17, the oldest that hosts CVMs`,
  },
  {
    field: "nodeVersion",
    refuses: (r) => {
      const [master, nodes] = [r.version, r.nodeVersion].map((v) => parseVersion(v ?? ""));
      return master !== undefined && nodes !== undefined && compareVersions(nodes, master) > 0;
    },
    reason: (r) => `GKE nodes cannot be newer than their master (${r.nodeVersion} > ${r.version})`,
  },
  {
    field: "imageType",
    refuses: (r) => !gkeImageTypes.includes(r.imageType),
    reason: (r) => `image type ${r.imageType} is not Ubuntu: CVM nodes need ${gkeImageTypes.join(" or ")}`,
  },
  {
    field: "imageType",
    refuses: (r) =>
      r.imageType === "UBUNTU" &&
      [r.version, r.nodeVersion].some((v) => v !== undefined && !olderThan(v, dockerImagesEnd, versionAliases)),
    reason: () => "image type UBUNTU (Docker-based) ended with GKE 1.24: use UBUNTU_CONTAINERD",
  },
  {
    field: "zone",
    refuses: (r) => (r.zone === undefined) === (r.region === undefined),
    reason: () => "give exactly one of --zone (a zonal cluster) or --region (a regional one)",
  },
  {
    field: "nodes",
    refuses: (r) => !Number.isInteger(r.nodes) || r.nodes < 1,
    reason: (r) => `node count ${r.nodes} must be a whole number of at least 1`,
  },
];

export function planGke(request: GkeRequest): ClusterPlan {
  refuse(gkeRefusals, request, "GKE cluster");
  const sysbox = needsSysbox(request.runtime);
  const location = request.zone ? ["--zone", request.zone] : ["--region", request.region!];
  const project = request.project ? ["--project", request.project] : [];
  const nodes = [
    "--image-type",
    request.imageType,
    request.nodeVersion !== undefined && "--node-version",
    request.nodeVersion,
    "--machine-type",
    request.machineType,
    "--num-nodes",
    String(request.nodes),
    ...(sysbox ? ["--node-labels", sysboxInstallLabel] : []),
  ];
  const command = request.nodePool
    ? shellCommand([
        "gcloud",
        "container",
        "node-pools",
        "create",
        request.nodePool,
        "--cluster",
        request.name,
        ...location,
        ...project,
        ...nodes,
      ])
    : shellCommand([
        "gcloud",
        "container",
        "clusters",
        "create",
        request.name,
        ...location,
        ...project,
        request.version !== undefined && "--cluster-version",
        request.version,
        ...nodes,
        // Pinned versions live outside release channels, whose auto-upgrades would move them.
        ...(request.version !== undefined || request.nodeVersion !== undefined ? ["--release-channel", "None"] : []),
        ...(request.nodeVersion !== undefined ? ["--no-enable-autoupgrade"] : []),
      ]);
  const credentials = shellCommand([
    "gcloud",
    "container",
    "clusters",
    "get-credentials",
    request.name,
    ...location,
    ...project,
  ]);
  const pool = request.nodePool ?? "default-pool";
  return {
    cloud: "gke",
    files: [],
    commands: [command, credentials],
    nodeSteps: sysbox ? sysboxNodeSteps(`cloud.google.com/gke-nodepool=${pool}`, true) : [],
    notes: [
      `nodes run ${request.imageType} (Ubuntu), as CVMs need`,
      sysbox
        ? "the runtime is sysbox: it is installed on the nodes by its daemonset (the node steps below)"
        : "the built-in runtime ships in the supervisor image: nothing to install on the nodes",
    ],
  };
}

/**
 * AKS: `az aks create` with Ubuntu nodes at Kubernetes 1.18 or newer.
 */

import type { RuntimeChoice } from "../../core/settings.js";
import { version } from "../versions.js";
import { type ClusterPlan, needsSysbox, notAVersion, olderThan, type Refusal, refuse, shellCommand } from "./plan.js";
import { sysboxInstallLabel, sysboxNodeSteps } from "./sysbox.js";

export interface AksRequest {
  name: string;
  resourceGroup: string;
  region?: string;
  /** --kubernetes-version; AKS's default when absent. */
  version?: string;
  nodes: number;
  vmSize: string;
  osSku: string;
  runtime: RuntimeChoice;
}

export const aksOsSkus = ["Ubuntu", "AzureLinux", "Windows2019", "Windows2022"];
const minimum = version("1.18");

export const aksRefusals: Refusal<AksRequest>[] = [
  {
    field: "version",
    refuses: (r) => notAVersion(r.version),
    reason: (r) => `"${r.version}" is not a Kubernetes version (such as 1.29.2)`,
  },
  {
    field: "version",
    refuses: (r) => olderThan(r.version, minimum),
    reason: (r) => `AKS ${r.version} is older than 1.18, the oldest that hosts CVMs`,
  },
  {
    field: "osSku",
    refuses: (r) => !aksOsSkus.includes(r.osSku),
    reason: (r) => `OS SKU ${r.osSku} is not one AKS offers (${aksOsSkus.join(", ")})`,
  },
  {
    field: "osSku",
    refuses: (r) => r.osSku.startsWith("Windows"),
    reason: (r) => `OS SKU ${r.osSku} is Windows: CVMs run on Linux nodes`,
  },
  {
    field: "osSku",
    refuses: (r) => needsSysbox(r.runtime) && r.osSku !== "Ubuntu",
    reason: (r) => `OS SKU ${r.osSku} is not Ubuntu, and sysbox needs Ubuntu nodes, or choose the built-in runtime`,
  },
  {
    field: "nodes",
    refuses: (r) => !Number.isInteger(r.nodes) || r.nodes < 1,
    reason: (r) => `node count ${r.nodes} must be a whole number of at least 1`,
  },
];

export function planAks(request: AksRequest): ClusterPlan {
  refuse(aksRefusals, request, "AKS cluster");
  const sysbox = needsSysbox(request.runtime);
  const create = shellCommand([
    "az",
    "aks",
    "create",
    "--resource-group",
    request.resourceGroup,
    "--name",
    request.name,
    request.region !== undefined && "--location",
    request.region,
    request.version !== undefined && "--kubernetes-version",
    request.version,
    "--node-count",
    String(request.nodes),
    "--node-vm-size",
    request.vmSize,
    "--os-sku",
    request.osSku,
    ...(sysbox ? ["--nodepool-labels", sysboxInstallLabel] : []),
    "--generate-ssh-keys",
  ]);
  const credentials = shellCommand([
    "az",
    "aks",
    "get-credentials",
    "--resource-group",
    request.resourceGroup,
    "--name",
    request.name,
  ]);
  return {
    cloud: "aks",
    files: [],
    commands: [create, credentials],
    nodeSteps: sysbox ? sysboxNodeSteps("agentpool=nodepool1", true) : [],
    notes: [`nodes run ${request.osSku}`],
  };
}

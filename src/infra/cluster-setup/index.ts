/** Cluster setup: what to run on GKE, EKS or AKS for a cluster that can host CVMs. */

export { type AksRequest, planAks } from "./aks.js";
export { defaultAmiFamily, defaultInstanceType, type EksRequest, planEks } from "./eks.js";
export { type GkeRequest, gkeImageTypes, planGke } from "./gke.js";
export type { ClusterFile, ClusterPlan } from "./plan.js";

/**
 * The node-side steps for sysbox: it is installed on the nodes themselves by
 * its own daemonset (sysbox-deploy-k8s), which only touches nodes labeled
 * `sysbox-install=yes` and labels them `sysbox-runtime=running` when done.
 */

export const sysboxInstallLabel = "sysbox-install=yes";
export const sysboxManifest =
  "https://raw.githubusercontent.com/nestybox/sysbox/master/sysbox-k8s-manifests/sysbox-install.yaml";

/** The steps after the nodes exist; `labeledAtCreation` when the cloud command already put the label on them. */
export function sysboxNodeSteps(nodeSelector: string, labeledAtCreation: boolean): string[] {
  return [
    labeledAtCreation
      ? `# The node pool's nodes carry ${sysboxInstallLabel} from creation (Ubuntu nodes; sysbox supports Ubuntu 20.04, 22.04 and 24.04).`
      : `kubectl label nodes -l ${nodeSelector} ${sysboxInstallLabel}`,
    `kubectl apply -f ${sysboxManifest}`,
    "kubectl -n kube-system rollout status daemonset/sysbox-deploy-k8s --timeout=10m",
    "# sysbox-deploy-k8s installs sysbox and CRI-O and restarts the kubelet on each labeled node; wait until every one is ready:",
    "kubectl get nodes -l sysbox-runtime=running",
    "cvm doctor --provider kubernetes --runtime sysbox",
  ];
}

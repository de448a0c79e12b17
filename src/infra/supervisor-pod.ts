/**
 * The supervisor Pod as the admission chain must admit it: the privileged (or
 * capability-listed) supervisor container, the environment's claim, runtime
 * state on an emptyDir, and /usr/src and /lib/modules from the node,
 * read-only. The doctor dry-runs exactly this shape, so whatever rejects it
 * would reject a real CVM.
 *
 * The Kubernetes provider owns the real Pod; until it exports its builder,
 * this mirrors the shape issue 5 and the seed's deployment describe.
 */

import type { V1Pod, V1SecurityContext } from "@kubernetes/client-node";
import type { InfrastructureSettings } from "../core/settings.js";

export const supervisorContainerName = "supervisor";
export const defaultSupervisorImage = "cvm-supervisor:latest";

export function supervisorSecurityContext(
  privileges: InfrastructureSettings["supervisorPrivileges"],
): V1SecurityContext {
  if (privileges.mode === "privileged") return { privileged: true };
  return { capabilities: { add: privileges.capabilities.map((c) => c.replace(/^CAP_/, "")) } };
}

/** What the supervisor Pod asks for, in words, for the evidence of the admission check. */
export function supervisorPodWords(settings: InfrastructureSettings): string {
  const privileges = settings.supervisorPrivileges;
  const security =
    privileges.mode === "privileged" ? "privileged" : `capabilities ${privileges.capabilities.join(",")}`;
  return `${security}; hostPath /usr/src and /lib/modules read-only`;
}

export function supervisorPodForDryRun(
  settings: InfrastructureSettings,
  name: string,
  image = defaultSupervisorImage,
): V1Pod {
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: {
      name,
      labels: { "app.kubernetes.io/managed-by": "cvm", "app.kubernetes.io/component": "supervisor" },
    },
    spec: {
      restartPolicy: "Never",
      containers: [
        {
          name: supervisorContainerName,
          image,
          command: ["cvm", "supervisor"],
          securityContext: supervisorSecurityContext(settings.supervisorPrivileges),
          volumeMounts: [
            { name: "home", mountPath: "/var/lib/cvm/home", subPath: "home" },
            { name: "home", mountPath: "/var/lib/cvm/docker", subPath: "docker" },
            { name: "runtime", mountPath: "/var/run/cvm" },
            { name: "usr-src", mountPath: "/usr/src", readOnly: true },
            { name: "lib-modules", mountPath: "/lib/modules", readOnly: true },
          ],
        },
      ],
      volumes: [
        { name: "home", persistentVolumeClaim: { claimName: `${name}-home` } },
        { name: "runtime", emptyDir: {} },
        { name: "usr-src", hostPath: { path: "/usr/src", type: "Directory" } },
        { name: "lib-modules", hostPath: { path: "/lib/modules", type: "Directory" } },
      ],
    },
  };
}

import assert from "node:assert/strict";
import { test } from "node:test";
import type { V1Pod } from "@kubernetes/client-node";
import { type PodView, podView } from "./pod-state.js";

const pod = (status: V1Pod["status"], extra: Partial<V1Pod> = {}): V1Pod => ({
  metadata: { name: "p", ...extra.metadata },
  spec: extra.spec ?? { containers: [], nodeName: "node-a" },
  status,
});

const cases: [string, V1Pod | undefined, PodView][] = [
  ["no Pod", undefined, { stage: "absent" }],
  [
    "being deleted",
    pod({ phase: "Running" }, { metadata: { deletionTimestamp: new Date() } }),
    { stage: "terminating", node: "node-a" },
  ],
  [
    "unschedulable, in the scheduler's words",
    pod(
      {
        phase: "Pending",
        conditions: [
          {
            type: "PodScheduled",
            status: "False",
            reason: "Unschedulable",
            message: "0/2 nodes are available: 2 Insufficient cpu.",
          },
        ],
      },
      { spec: { containers: [] } },
    ),
    { stage: "pending", reason: "not scheduled: 0/2 nodes are available: 2 Insufficient cpu.", node: undefined },
  ],
  [
    "scheduled, creating",
    pod({ phase: "Pending" }),
    { stage: "pending", reason: "scheduled on node-a", node: "node-a" },
  ],
  [
    "a wrong image fails at once",
    pod({
      phase: "Pending",
      containerStatuses: [
        {
          name: "environment",
          image: "x",
          imageID: "",
          ready: false,
          restartCount: 0,
          state: { waiting: { reason: "ErrImagePull", message: "not found" } },
        },
      ],
    }),
    { stage: "failed", reason: "container environment: ErrImagePull: not found", node: "node-a" },
  ],
  [
    "running, not ready",
    pod({ phase: "Running", conditions: [{ type: "Ready", status: "False" }] }),
    { stage: "starting", node: "node-a" },
  ],
  [
    "running and ready",
    pod({ phase: "Running", conditions: [{ type: "Ready", status: "True" }] }),
    { stage: "running", node: "node-a" },
  ],
  [
    "OOM-killed",
    pod({
      phase: "Failed",
      containerStatuses: [
        {
          name: "supervisor",
          image: "x",
          imageID: "",
          ready: false,
          restartCount: 0,
          state: { terminated: { exitCode: 137, reason: "OOMKilled" } },
        },
      ],
    }),
    { stage: "failed", reason: "container supervisor out of memory (OOMKilled) with exit code 137", node: "node-a" },
  ],
  [
    "evicted",
    pod({ phase: "Failed", reason: "Evicted", message: "The node was low on resource: memory." }),
    { stage: "failed", reason: "Evicted: The node was low on resource: memory.", node: "node-a" },
  ],
  ["ended without a word", pod({ phase: "Succeeded" }), { stage: "failed", reason: "the Pod ended", node: "node-a" }],
];

for (const [name, input, expected] of cases) {
  test(`podView: ${name}`, () => {
    assert.deepEqual(podView(input), expected);
  });
}

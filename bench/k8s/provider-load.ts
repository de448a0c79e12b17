/**
 * The provider side of bench/k8s, in its own process as in the server:
 * builds N environments at once (as N creates through the API would launch
 * them), waits for all to run, and prints seconds and this process's RSS as
 * one JSON line.
 *   node --import tsx bench/k8s/provider-load.ts KUBECONFIG NAMESPACE N
 */

import { pino } from "pino";
import type { Environment } from "../../src/core/environment.js";
import type { BuildContext } from "../../src/core/provider.js";
import { createKubernetesProvider } from "../../src/providers/kubernetes/index.js";
import { newId } from "../../src/store/ids.js";
import * as fixtures from "../../src/testing/fixtures.js";

const [kubeconfig, namespace, countText] = process.argv.slice(2);
const count = Number(countText);
const settings = fixtures.settings({ cvmEnabled: true });

function environment(i: number): Environment {
  return fixtures.environment({
    name: `bench-${i}`,
    image: "127.0.0.1:5000/cvm-test/ubuntu-systemd-docker:latest",
    cvm: true,
    cpu: 0.01,
    memoryGiB: 0.25,
    ownerId: "usr_bench",
    ownerEmail: "bench@example.com",
    buildId: newId("bld"),
  });
}

const provider = await createKubernetesProvider({
  kind: "kubernetes",
  kubeconfig,
  namespace,
  dataDir: "/tmp",
  logger: pino({ level: "warn" }),
  buildTimeoutSeconds: 1200,
});
const signal = new AbortController().signal;
const begun = performance.now();
const since = () => (performance.now() - begun) / 1000;
/** When each environment's Pod was created, and when it ran: where the time goes. */
const podCreated: number[] = [];
const ran: number[] = [];
const context: BuildContext = {
  settings,
  log: async (text) => {
    if (text.startsWith("created Pod")) podCreated.push(since());
  },
  enter: async () => {},
  signal,
};
const results = await Promise.allSettled(
  Array.from({ length: count }, (_, i) =>
    provider.build(environment(i), context).then((observation) => {
      ran.push(since());
      return observation;
    }),
  ),
);
const seconds = since();
const at = (values: number[], q: number) =>
  (values.sort((a, b) => a - b)[Math.floor((values.length - 1) * q)] ?? 0).toFixed(1);
console.error(
  `Pods created: median ${at(podCreated, 0.5)} s, last ${at(podCreated, 1)} s; running: median ${at(ran, 0.5)} s, last ${at(ran, 1)} s`,
);
const failures = results.filter((r) => r.status === "rejected");
if (failures.length > 0)
  console.error(`${failures.length} failed; first: ${(failures[0] as PromiseRejectedResult).reason}`);
const running = results.filter((r) => r.status === "fulfilled" && r.value.running).length;
const rssMiB = process.memoryUsage().rss / 1024 / 1024;
await provider.close();
console.log(JSON.stringify({ seconds, rssMiB, running }));

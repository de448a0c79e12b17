/**
 * `cvm supervisor probe IMAGE...`: what the doctor's trial Pod runs in place
 * of a CVM (src/infra/supervisor-trial.ts). In the very Pod a CVM would get,
 * it starts the supervisor's own engine, asks it whether the isolation
 * runtime the settings want is registered, and asks each image's registry
 * for its manifest through that engine, with the credentials the Pod was
 * given where they are that registry's: what a CVM's build would meet first, without building one. The
 * answer is the container's termination message (pod-contract.ts).
 */

import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { pino } from "pino";
import { CvmError } from "../core/errors.js";
import { chooseRuntime } from "../core/isolation-runtime.js";
import { registryDigest } from "../docker/image-pull.js";
import { CvmEngine } from "./engine.js";
import { podEnvironment } from "./pod-agent.js";
import { decodeRegistryAuthFor, encodeProbeVerdict, type ProbeVerdict } from "./pod-contract.js";

/** Where the kubelet reads a container's termination message (the default terminationMessagePath). */
export const terminationLog = "/dev/termination-log";

function words(error: unknown): string {
  if (error instanceof CvmError) return error.detail ? `${error.message}: ${error.detail}` : error.message;
  return error instanceof Error ? error.message : String(error);
}

export interface ProbeOptions {
  /** Where the verdict goes; the kubelet's termination log in a Pod. */
  out?: string;
  /** The Pod's variables (pod-contract.ts); the process's own in a Pod. */
  env?: NodeJS.ProcessEnv;
  logLevel?: string;
}

export async function runImageProbe(images: string[], options: ProbeOptions = {}): Promise<ProbeVerdict> {
  const pod = podEnvironment(options.env);
  const logger = pino({ base: { service: "cvm-supervisor-probe" }, level: options.logLevel ?? "info" });
  const engine = new CvmEngine({
    dataDir: pod.runtimeDir,
    logger,
    insecureRegistries: pod.insecureRegistries,
    startTimeoutMs: 60_000,
  });
  const authFile = existsSync(pod.registryAuthFile) ? readFileSync(pod.registryAuthFile, "utf8") : undefined;
  const verdict: ProbeVerdict = { images: [] };
  try {
    const begun = Date.now();
    const docker = await engine.ensure();
    verdict.engineMs = Date.now() - begun;
    verdict.runtimes = await engine.runtimes();
    try {
      chooseRuntime(pod.runtime, verdict.runtimes);
    } catch (error) {
      verdict.runtime = words(error);
    }
    for (const image of images) {
      const answer = await registryDigest(docker, image, decodeRegistryAuthFor(authFile, image));
      verdict.images.push(
        "digest" in answer ? { image, digest: answer.digest } : { image, failure: answer.message, kind: answer.kind },
      );
    }
  } catch (error) {
    verdict.engine = words(error);
  } finally {
    await engine.close().catch((error) => logger.warn({ err: error }, "could not stop the probe's engine"));
  }
  const text = encodeProbeVerdict(verdict);
  writeFileSync(options.out ?? terminationLog, text);
  process.stdout.write(`${text}\n`);
  return verdict;
}

/**
 * Getting an environment's image into an engine, for the host's engine
 * (standard environments) and cvm's own (CVMs) alike: pulled from its
 * registry with the environment's credentials, retried with backoff while the
 * failure may pass, each failure classified by src/core/pull-failure.ts; or,
 * when no registry has it, a copy on this node stands in (a laptop user's
 * freshly built image). A failure a user can act on becomes a CvmError that
 * names it, with the engine's words as the detail and cause.
 */

import { setTimeout as sleep } from "node:timers/promises";
import type Dockerode from "dockerode";
import type { RegistryCredentials } from "../core/environment.js";
import { CvmError, type ErrorCode } from "../core/errors.js";
import { credentialServer, isImageReference, parseImageReference } from "../core/image-reference.js";
import { classifyPullError, type PullFailure, retryablePullFailures } from "../core/pull-failure.js";

/** The user can fix a bad reference or credentials; the rest is the node's or the registry's trouble. */
const failures: Record<PullFailure, { code: ErrorCode; says: string }> = {
  auth: {
    code: "BAD_REQUEST",
    says: "the registry refused the credentials (check the registry username and password)",
  },
  tls: {
    code: "UNAVAILABLE",
    says: "TLS failed: the registry's certificate is not trusted here, or it speaks plain HTTP",
  },
  "not-found": {
    code: "BAD_REQUEST",
    says: "not found: its registry has no such image or tag, and no engine here has a copy to use",
  },
  "disk-full": { code: "UNAVAILABLE", says: "the engine's disk is full (free space, then rebuild)" },
  unreachable: { code: "UNAVAILABLE", says: "its registry could not be reached, and no engine here has a copy to use" },
  transient: { code: "UNAVAILABLE", says: "its registry kept failing; try again later" },
  other: { code: "UNAVAILABLE", says: "the engine could not pull it" },
};

/** One failed pull: its kind, the engine's words, and the error that carried them. */
export interface PullFailureReport {
  kind: PullFailure;
  message: string;
  cause?: unknown;
}

export function pullError(image: string, failure: PullFailureReport): CvmError {
  const { code, says } = failures[failure.kind];
  return new CvmError(code, `Image ${image}: ${says}`, { detail: failure.message, cause: failure.cause });
}

export interface PullOptions {
  credentials?: RegistryCredentials;
  log: (text: string) => Promise<void>;
  signal?: AbortSignal;
  /** Tries for retryable failures; waits 0.5, 1, 2 s... between them. Default 4. */
  attempts?: number;
  /** Whether a failure is worth another try; by default the kinds that may pass (transient, unreachable). */
  retryable?: (failure: PullFailureReport) => boolean;
}

/** The engine's own words, without dockerode's "(HTTP code 500) server error - " in front. */
function messageOf(error: unknown): string {
  const e = error as { json?: { message?: string }; message?: string };
  const message = e.json?.message ?? e.message ?? String(error);
  return message.replace(/^\(HTTP code \d+\) [^-]*- /, "").trim();
}

async function pullOnce(docker: Dockerode, image: string, credentials?: RegistryCredentials): Promise<void> {
  const authconfig = credentials ? { ...credentials, serveraddress: credentialServer(image) } : undefined;
  const stream = (await docker.pull(image, authconfig ? { authconfig } : {})) as NodeJS.ReadableStream;
  await new Promise<void>((resolve, reject) => {
    docker.modem.followProgress(
      stream,
      (error: Error | null, events: { error?: string; errorDetail?: { message?: string } }[]) => {
        const failed = events?.find((event) => event.error || event.errorDetail);
        if (error) reject(error);
        else if (failed) reject(new Error(failed.errorDetail?.message ?? failed.error));
        else resolve();
      },
    );
  });
}

/**
 * Pulls `image` into `docker`, trying again while the failure may pass.
 * Answers undefined when the image arrived, else the last failure, classified.
 */
export async function pullWithRetry(
  docker: Dockerode,
  image: string,
  options: PullOptions,
): Promise<PullFailureReport | undefined> {
  const attempts = options.attempts ?? 4;
  const retryable = options.retryable ?? ((failure) => retryablePullFailures.has(failure.kind));
  let failure: PullFailureReport = { kind: "other", message: "no attempt made" };
  for (let attempt = 1; attempt <= attempts; attempt++) {
    options.signal?.throwIfAborted();
    try {
      await pullOnce(docker, image, options.credentials);
      return undefined;
    } catch (error) {
      const message = messageOf(error);
      failure = { kind: classifyPullError(message), message, cause: error };
      if (!retryable(failure) || attempt === attempts) break;
      const wait = 500 * 2 ** (attempt - 1);
      await options.log(`pull failed (${failure.kind}: ${message}); retrying in ${wait / 1000} s`);
      await sleep(wait, undefined, { signal: options.signal });
    }
  }
  return failure;
}

export async function imageId(docker: Dockerode, image: string): Promise<string | undefined> {
  return docker
    .getImage(image)
    .inspect()
    .then((info) => info.Id)
    .catch(() => undefined);
}

/**
 * What the image's registry says of it, asked through the engine (its
 * distribution endpoint: the engine's own resolver, insecure registries and
 * credentials, as a pull would use them): the manifest's digest, or a
 * classified failure in the engine's words. Nothing is downloaded.
 */
export async function registryDigest(
  docker: Dockerode,
  image: string,
  credentials?: RegistryCredentials,
): Promise<{ digest: string } | PullFailureReport> {
  const authconfig = credentials ? { ...credentials, serveraddress: credentialServer(image) } : undefined;
  try {
    const answer = (await docker.getImage(image).distribution(authconfig ? { authconfig } : {})) as {
      Descriptor?: { digest?: string };
    };
    const digest = answer?.Descriptor?.digest;
    return digest ? { digest } : { kind: "other", message: "the registry answered without a digest" };
  } catch (error) {
    const message = messageOf(error);
    return { kind: classifyPullError(message), message, cause: error };
  }
}

/** Copies an image from one engine on this node into another (docker save | docker load). */
export async function copyImage(from: Dockerode, to: Dockerode, image: string): Promise<void> {
  const archive = await from.getImage(image).get();
  const result = (await to.loadImage(archive as unknown as NodeJS.ReadableStream)) as NodeJS.ReadableStream;
  let output = "";
  for await (const chunk of result) output += chunk.toString();
  const failed = /"error(?:Detail)?":\s*"?([^"}]+)/.exec(output);
  if (failed) throw new Error(failed[1]);
}

/**
 * Where the image came from: its registry (something was downloaded), the
 * engine's own copy (already there and current with its registry, or standing
 * in for a registry that failed), or the node's engine.
 */
export type ImageSource = "registry" | "engine" | "node-engine";

export interface EnsureImageOptions extends PullOptions {
  /**
   * Which failures the engine's own copy stands in for. "any-failure": the
   * host's engine, where a user's freshly built image lives; one pull is
   * tried (the registry may have a newer image), and any failure takes the
   * copy. "unreachable": cvm's engine, shared by users whose credentials
   * differ, takes its copy only when the registry cannot be reached.
   */
  ownCopy: "any-failure" | "unreachable";
  /** The node's engine, whose copy is taken when no registry will give the image (for cvm's own engine). */
  nodeEngine?: Dockerode;
}

/** Failures that mean no registry will give this image here, so a copy on the node may. */
const noRegistryFailures: ReadonlySet<PullFailure> = new Set(["not-found", "unreachable", "auth"]);

function namesRegistry(image: string): boolean {
  const parsed = parseImageReference(image);
  return isImageReference(parsed) && parsed.domain !== undefined;
}

/** Makes `image` present in `docker`; says where it came from, or throws a CvmError naming the failure. */
export async function ensureImage(docker: Dockerode, image: string, options: EnsureImageOptions): Promise<ImageSource> {
  const own = await imageId(docker, image);
  const ownForAny = own !== undefined && options.ownCopy === "any-failure";
  const { nodeEngine } = options;
  const failure = await pullWithRetry(docker, image, {
    ...options,
    attempts: ownForAny ? 1 : options.attempts,
    // A name only the node's engine knows is not worth retrying against Docker Hub.
    retryable: (f) =>
      retryablePullFailures.has(f.kind) && !(f.kind === "unreachable" && nodeEngine && !namesRegistry(image)),
  });
  // A pull that downloaded nothing leaves the image as it was: the engine already had it, current.
  if (!failure) return own !== undefined && (await imageId(docker, image)) === own ? "engine" : "registry";
  if (own && ownForAny) {
    await options.log(`pull failed (${failure.message}); using the local engine's copy ${own.slice(0, 19)}`);
    return "engine";
  }
  if (nodeEngine && noRegistryFailures.has(failure.kind)) {
    const nodeId = await imageId(nodeEngine, image);
    if (nodeId && nodeId === own) return "engine";
    if (nodeId) {
      await options.log(`pull failed (${failure.kind}); copying ${image} from the node's engine`);
      await copyImage(nodeEngine, docker, image);
      return "node-engine";
    }
  }
  if (own && failure.kind === "unreachable") {
    await options.log(`pull failed (${failure.kind}); using the local engine's copy ${own.slice(0, 19)}`);
    return "engine";
  }
  throw pullError(image, failure);
}

/**
 * Getting an environment's image into the host engine: pulled from its
 * registry (with the environment's credentials, retried with backoff while the
 * failure may pass), or taken as it is from the engine when no registry has it
 * (a laptop user's freshly built image). A failure a user can act on becomes a
 * CvmError that names it, with the engine's words as the detail and cause.
 */

import { setTimeout as sleep } from "node:timers/promises";
import type Dockerode from "dockerode";
import type { RegistryCredentials } from "../../core/environment.js";
import { CvmError, type ErrorCode } from "../../core/errors.js";
import { isImageReference, parseImageReference } from "../../core/image-reference.js";
import { classifyPullError, type PullFailure, retryablePullFailures } from "../../core/pull-failure.js";

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
    says: "not found: its registry has no such image or tag, nor has the local engine",
  },
  "disk-full": { code: "UNAVAILABLE", says: "the engine's disk is full (free space, then rebuild)" },
  unreachable: { code: "UNAVAILABLE", says: "its registry could not be reached, and the local engine has no copy" },
  transient: { code: "UNAVAILABLE", says: "its registry kept failing; try again later" },
  other: { code: "UNAVAILABLE", says: "the engine could not pull it" },
};

export interface PullOptions {
  credentials?: RegistryCredentials;
  log: (text: string) => Promise<void>;
  signal?: AbortSignal;
  /** Tries for retryable failures; waits 0.5, 1, 2 s... between them. Default 4. */
  attempts?: number;
}

function registryOf(image: string): string {
  const parsed = parseImageReference(image);
  return (isImageReference(parsed) && parsed.domain) || "https://index.docker.io/v1/";
}

/** The engine's own words, without dockerode's "(HTTP code 500) server error - " in front. */
function messageOf(error: unknown): string {
  const e = error as { json?: { message?: string }; message?: string };
  const message = e.json?.message ?? e.message ?? String(error);
  return message.replace(/^\(HTTP code \d+\) [^-]*- /, "").trim();
}

async function pullOnce(docker: Dockerode, image: string, credentials?: RegistryCredentials): Promise<void> {
  const authconfig = credentials ? { ...credentials, serveraddress: registryOf(image) } : undefined;
  const stream = (await docker.pull(image, authconfig ? { authconfig } : {})) as NodeJS.ReadableStream;
  await new Promise<void>((resolve, reject) => {
    docker.modem.followProgress(stream, (error: Error | null, events: { error?: string }[]) => {
      const failed = events?.find((event) => event.error);
      if (error) reject(error);
      else if (failed) reject(new Error(failed.error));
      else resolve();
    });
  });
}

async function localImageId(docker: Dockerode, image: string): Promise<string | undefined> {
  return docker
    .getImage(image)
    .inspect()
    .then((info) => info.Id)
    .catch(() => undefined);
}

/**
 * Makes `image` present in the engine; returns where it came from. When the
 * engine already has the image, one pull is tried (the registry may have a
 * newer one) and any failure falls back to the local copy without retries.
 */
export async function pullImage(docker: Dockerode, image: string, options: PullOptions): Promise<"registry" | "local"> {
  const local = await localImageId(docker, image);
  const attempts = local ? 1 : (options.attempts ?? 4);
  let failure: { kind: PullFailure; message: string; error: unknown } | undefined;
  for (let attempt = 1; attempt <= attempts; attempt++) {
    options.signal?.throwIfAborted();
    try {
      await pullOnce(docker, image, options.credentials);
      return "registry";
    } catch (error) {
      const message = messageOf(error);
      failure = { kind: classifyPullError(message), message, error };
      if (!retryablePullFailures.has(failure.kind) || attempt === attempts) break;
      const wait = 500 * 2 ** (attempt - 1);
      await options.log(`pull failed (${failure.kind}: ${message}); retrying in ${wait / 1000} s`);
      await sleep(wait, undefined, { signal: options.signal });
    }
  }
  if (local) {
    await options.log(`pull failed (${failure?.message}); using the local engine's copy ${local.slice(0, 19)}`);
    return "local";
  }
  const { kind, message, error } = failure ?? { kind: "other" as const, message: "no attempt made", error: undefined };
  throw new CvmError(failures[kind].code, `Image ${image}: ${failures[kind].says}`, { detail: message, cause: error });
}

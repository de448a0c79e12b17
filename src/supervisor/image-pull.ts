/**
 * Getting the user's image into cvm's engine: pulled from its registry (with
 * the environment's credentials, retried with backoff when the failure may
 * pass), or, when no registry has it, copied from the node's own engine (a
 * laptop user's freshly built image): `docker save` there piped into `load`
 * here. Every failure a user can fix becomes a CvmError that says what to fix.
 */

import { setTimeout as sleep } from "node:timers/promises";
import type Dockerode from "dockerode";
import type { RegistryCredentials } from "../core/environment.js";
import { CvmError } from "../core/errors.js";
import { isImageReference, parseImageReference } from "../core/image-reference.js";
import { classifyPullError, type PullFailure, retryablePullFailures } from "../core/pull-failure.js";

const failureAdvice: Record<PullFailure, string> = {
  auth: "The registry refused the credentials: check the environment's registry username and password.",
  tls: "TLS failed talking to the registry: its certificate is not trusted by this node (or it speaks plain HTTP).",
  "not-found": "The registry has no such image or tag: check the reference.",
  "disk-full": "The node's disk is full: free space under cvm's data dir, then rebuild.",
  unreachable: "The registry could not be reached from this node.",
  transient: "The registry kept failing; try again later.",
  other: "The engine could not pull the image.",
};

/** The user can fix a bad reference or credentials; the rest is the node's or the registry's trouble. */
const failureCode: Record<PullFailure, "BAD_REQUEST" | "UNAVAILABLE"> = {
  auth: "BAD_REQUEST",
  tls: "UNAVAILABLE",
  "not-found": "BAD_REQUEST",
  "disk-full": "UNAVAILABLE",
  unreachable: "UNAVAILABLE",
  transient: "UNAVAILABLE",
  other: "UNAVAILABLE",
};

export interface PullOptions {
  credentials?: RegistryCredentials;
  log: (text: string) => Promise<void>;
  signal?: AbortSignal;
  /** Attempts for retryable failures (default 4: waits 0.5, 1, 2 s between). */
  attempts?: number;
  /** The node's own engine, asked when no registry has the image. */
  hostDocker?: Dockerode;
}

function registryOf(image: string): string | undefined {
  const parsed = parseImageReference(image);
  return isImageReference(parsed) ? parsed.domain : undefined;
}

/** Docker Hub names without a registry ("debian:12", "cvm/hello") are normalized the engine's way. */
export function normalizeReference(image: string): string {
  const parsed = parseImageReference(image);
  if (!isImageReference(parsed) || parsed.tag || parsed.digest) return image;
  return `${image}:latest`;
}

async function pullOnce(docker: Dockerode, image: string, credentials?: RegistryCredentials): Promise<void> {
  const serveraddress = registryOf(image) ?? "https://index.docker.io/v1/";
  const stream = (await docker.pull(image, {
    ...(credentials ? { authconfig: { ...credentials, serveraddress } } : {}),
  })) as NodeJS.ReadableStream;
  await new Promise<void>((resolve, reject) => {
    docker.modem.followProgress(
      stream,
      (error: Error | null, events: { error?: string; errorDetail?: { message?: string } }[]) => {
        const failed = events?.find((e) => e.error || e.errorDetail);
        if (error) reject(error);
        else if (failed) reject(new Error(failed.errorDetail?.message ?? failed.error));
        else resolve();
      },
    );
  });
}

function messageOf(error: unknown): string {
  const e = error as { json?: { message?: string }; message?: string };
  return e.json?.message ?? e.message ?? String(error);
}

async function imageId(docker: Dockerode, image: string): Promise<string | undefined> {
  return docker
    .getImage(image)
    .inspect()
    .then((i) => i.Id)
    .catch(() => undefined);
}

/** Copies an image from the node's engine into cvm's (docker save | docker load). */
async function copyFromHost(host: Dockerode, docker: Dockerode, image: string): Promise<void> {
  const archive = await host.getImage(image).get();
  const result = (await docker.loadImage(archive as unknown as NodeJS.ReadableStream)) as NodeJS.ReadableStream;
  let output = "";
  for await (const chunk of result) output += chunk.toString();
  const failed = /"error(?:Detail)?":\s*"?([^"}]+)/.exec(output);
  if (failed) throw new Error(failed[1]);
}

/**
 * Makes `image` present in `docker`. Returns where it came from, for the
 * build log. Throws a CvmError naming the failure.
 */
export async function ensureImage(
  docker: Dockerode,
  image: string,
  options: PullOptions,
): Promise<"registry" | "node-engine" | "cvm-engine"> {
  const attempts = options.attempts ?? 4;
  let last: { kind: PullFailure; message: string } | undefined;
  for (let attempt = 1; attempt <= attempts; attempt++) {
    options.signal?.throwIfAborted();
    try {
      await pullOnce(docker, image, options.credentials);
      return "registry";
    } catch (error) {
      const message = messageOf(error);
      const kind = classifyPullError(message);
      last = { kind, message };
      // A name only the node's engine knows is not worth retrying against a registry.
      if (!retryablePullFailures.has(kind) || (kind === "unreachable" && !registryOf(image))) break;
      if (attempt < attempts) {
        const wait = 500 * 2 ** (attempt - 1);
        await options.log(`pull failed (${kind}: ${message}); retrying in ${wait / 1000} s`);
        await sleep(wait, undefined, { signal: options.signal });
      }
    }
  }
  const failure = last ?? { kind: "other" as const, message: "unknown" };
  // Not in any registry we could reach: the node's engine may have it (a freshly built image).
  if (options.hostDocker && ["not-found", "unreachable", "auth"].includes(failure.kind)) {
    const hostId = await imageId(options.hostDocker, image);
    if (hostId) {
      if ((await imageId(docker, image)) === hostId) return "cvm-engine";
      await options.log(`pull failed (${failure.kind}); copying ${image} from the node's engine`);
      await copyFromHost(options.hostDocker, docker, image);
      return "node-engine";
    }
  }
  if (failure.kind === "unreachable" && (await imageId(docker, image))) {
    await options.log(`registry unreachable; using the copy of ${image} already in cvm's engine`);
    return "cvm-engine";
  }
  throw new CvmError(failureCode[failure.kind], `Could not pull ${image}: ${failureAdvice[failure.kind]}`, {
    detail: failure.message,
  });
}

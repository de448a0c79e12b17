/**
 * Test images, built from Debian's packages (no registry can be pulled from
 * here) and pushed to the local registry. Returns the environment variables
 * that name them for the tests. A no-op costing a few registry HEAD requests
 * when every image is current; otherwise builds what is missing (images/build.ts).
 */

import { type BuiltImage, buildImages } from "../../images/build.js";
import { registryAddress } from "./services.js";

/** Which variable names which recipe's image. */
const variables: Record<string, string> = {
  "debian-systemd-docker": "CVM_TEST_IMAGE_SYSTEMD_DOCKER",
  "debian-systemd": "CVM_TEST_IMAGE_SYSTEMD",
  "debian-plain": "CVM_TEST_IMAGE_PLAIN",
  "debian-dangling-init": "CVM_TEST_IMAGE_DANGLING_INIT",
  hello: "CVM_TEST_IMAGE_HELLO",
  "hello-arm64": "CVM_TEST_IMAGE_HELLO_ARM64",
};

export async function ensureTestImages(): Promise<Record<string, string>> {
  const started = Date.now();
  const built = await buildImages({
    names: Object.keys(variables),
    registry: registryAddress,
    log: (line) => console.log(`images: ${line}`),
  });
  const seconds = (Date.now() - started) / 1000;
  if (seconds > 5) console.log(`images: ready in ${seconds.toFixed(1)} s`);
  const env: Record<string, string> = {};
  for (const image of built) env[variables[image.name]] = image.reference;
  const hello = built.find((image) => image.name === "hello") as BuiltImage;
  env.CVM_TEST_IMAGE_HELLO_TAR = hello.savedTar as string;
  return env;
}

/**
 * Pulling an environment's image the way a user's registry answers: a real
 * registry (Debian's docker-registry) that asks for credentials, started here
 * on loopback, and a registry that is not there at all.
 */

import assert from "node:assert/strict";
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";
import Dockerode from "dockerode";
import pino from "pino";
import type { Environment } from "../../src/core/environment.js";
import type { Provider } from "../../src/core/provider.js";
import { createDockerProvider } from "../../src/providers/docker/index.js";
import * as fixtures from "../../src/testing/fixtures.js";
import { freePort } from "../harness/ports.js";

const run = promisify(execFile);
const helloImage = process.env.CVM_TEST_IMAGE_HELLO;
const skip = !helloImage && "run through `npm test`, which builds the test images";

const docker = new Dockerode({ socketPath: process.env.CVM_TEST_HOST_DOCKER ?? "/var/run/docker.sock" });
const prefix = `pulltest-${randomBytes(3).toString("hex")}`;
const scratch = mkdtempSync(join(tmpdir(), "cvm-pull-test-"));
const user = { username: "cvm-test", password: `pw-${randomBytes(6).toString("hex")}` };
let provider: Provider;
let registry: ChildProcess | undefined;
let registryAddress = "";
const environments: Environment[] = [];

/** Debian's docker-registry on a free loopback port, with htpasswd (bcrypt) credentials. */
async function startPrivateRegistry(): Promise<void> {
  const { stdout: hash } = await run("python3", [
    "-W",
    "ignore",
    "-c",
    "import crypt,sys; print(crypt.crypt(sys.argv[1], crypt.mksalt(crypt.METHOD_BLOWFISH)))",
    user.password,
  ]);
  writeFileSync(join(scratch, "htpasswd"), `${user.username}:${hash.trim()}\n`);
  registryAddress = `127.0.0.1:${await freePort()}`;
  writeFileSync(
    join(scratch, "registry.yml"),
    [
      "version: 0.1",
      "log: { level: error }",
      `storage: { filesystem: { rootdirectory: ${join(scratch, "blobs")} } }`,
      `http: { addr: ${registryAddress} }`,
      `auth: { htpasswd: { realm: cvm-test, path: ${join(scratch, "htpasswd")} } }`,
      "",
    ].join("\n"),
  );
  registry = spawn("docker-registry", ["serve", join(scratch, "registry.yml")], { stdio: "ignore" });
  for (let i = 0; i < 100; i++) {
    const status = await fetch(`http://${registryAddress}/v2/`).then(
      (r) => r.status,
      () => 0,
    );
    if (status === 401) return;
    await sleep(100);
  }
  throw new Error("the private registry did not answer");
}

function environment(name: string, image: string): Environment {
  const env = fixtures.environment({
    name: `${prefix}-${name}`,
    image,
    memoryGiB: 0.25,
    buildId: "bld_pull_test",
  });
  environments.push(env);
  return env;
}

function context(credentials?: { username: string; password: string }) {
  return fixtures.recordingContext({ credentials });
}

before(async () => {
  provider = await createDockerProvider({ kind: "docker", dataDir: scratch, logger: pino({ level: "silent" }) });
});

after(async () => {
  for (const env of environments) await provider.remove(env, { keepHome: false }).catch(() => undefined);
  await provider?.close();
  if (registry?.pid) registry.kill("SIGTERM");
  if (registryAddress) await run("docker", ["rmi", `${registryAddress}/cvm/private:1`]).catch(() => undefined);
  rmSync(scratch, { recursive: true, force: true });
});

test("a registry that asks for credentials: refused without them, pulled with them", { skip }, async () => {
  await startPrivateRegistry();
  const image = `${registryAddress}/cvm/private:1`;
  // Put the image there with the CLI (its own config dir, so root's docker login is untouched), then forget it locally.
  const config = join(scratch, "docker-config");
  await run("docker", ["pull", "--quiet", helloImage as string]);
  await run("docker", ["tag", helloImage as string, image]);
  const login = spawn("docker", [
    "--config",
    config,
    "login",
    registryAddress,
    "-u",
    user.username,
    "--password-stdin",
  ]);
  login.stdin.end(user.password);
  assert.equal(await new Promise((resolve) => login.on("exit", resolve)), 0, "docker login to the private registry");
  await run("docker", ["--config", config, "push", "--quiet", image]);
  await run("docker", ["rmi", image]);

  const anonymous = environment("anon", image);
  await assert.rejects(provider.build(anonymous, context()), (error: Error & { code?: string; detail?: string }) => {
    assert.match(error.message, /refused the credentials/);
    assert.equal(error.code, "BAD_REQUEST");
    assert.match(error.detail ?? "", /no basic auth credentials|unauthorized|authentication required/i);
    return true;
  });

  const wrong = environment("wrong", image);
  await assert.rejects(
    provider.build(wrong, context({ ...user, password: "not-the-password" })),
    /refused the credentials/,
  );

  const authorized = environment("auth", image);
  const ctx = context(user);
  const built = await provider.build(authorized, ctx);
  assert.equal(built.running, true);
  assert.ok(ctx.lines.includes(`pulling ${image} with registry credentials`), ctx.lines.join("\n"));
  assert.ok(
    ctx.lines.some((l) => /image ready from the registry/.test(l)),
    ctx.lines.join("\n"),
  );
  assert.ok(await docker.getImage(image).inspect(), "pulled into the engine");

  // Built again, nothing is downloaded: the log says the engine already had it, not that it was pulled.
  const again = environment("again", image);
  const againCtx = context(user);
  await provider.build(again, againCtx);
  assert.ok(
    againCtx.lines.some((l) => /image ready from the local engine/.test(l)),
    againCtx.lines.join("\n"),
  );
});

test("a registry that is not there: retried with backoff, then a clear error", { skip }, async () => {
  const image = `127.0.0.1:${await freePort()}/cvm/${prefix}:1`;
  const ctx = context();
  const started = Date.now();
  await assert.rejects(provider.build(environment("gone", image), ctx), (error: Error & { code?: string }) => {
    assert.match(error.message, /could not be reached/);
    assert.equal(error.code, "UNAVAILABLE");
    return true;
  });
  const retries = ctx.lines.filter((l) => /^pull failed \(unreachable: .*connection refused.*\); retrying in/.test(l));
  assert.deepEqual(
    retries.map((l) => /retrying in (.*)$/.exec(l)?.[1]),
    ["0.5 s", "1 s", "2 s"],
  );
  assert.ok(Date.now() - started >= 3500, "waited between the tries");
});

/**
 * The environment images: the seed's Dockerfiles (checked statically: no
 * registry to pull ubuntu from here), and the images built offline from
 * Debian's packages, checked in the host engine for what a CVM relies on.
 */

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { promisify } from "node:util";

const run = promisify(execFile);
const images = join(import.meta.dirname, "..", "..", "images");

function dockerfile(name: string): string {
  return readFileSync(join(images, name, "Dockerfile"), "utf8");
}

for (const name of ["ubuntu-systemd", "ubuntu-systemd-docker"]) {
  test(`${name}/Dockerfile builds on Ubuntu with systemd linked as /sbin/init and a default user`, () => {
    const text = dockerfile(name);
    assert.match(text, /^FROM ubuntu:\S+$/m);
    assert.match(text, /ln -sf \/lib\/systemd\/systemd \/sbin\/init/);
    assert.match(text, /--no-install-recommends[\s\S]*\bsystemd systemd-sysv\b/);
    assert.match(text, /useradd [^\n]*--uid 1000 [^\n]* dev\b/);
    assert.match(text, /^CMD \["\/sbin\/init"\]$/m);
  });
}

test("ubuntu-systemd-docker/Dockerfile installs docker.io and enables docker.service under systemd", () => {
  const text = dockerfile("ubuntu-systemd-docker");
  assert.match(text, /\bdocker\.io\b/);
  assert.match(text, /systemctl enable docker\.service/);
  assert.match(text, /--groups sudo,docker dev/);
  assert.doesNotMatch(dockerfile("ubuntu-systemd"), /docker\.io/);
});

const built = {
  systemdDocker: process.env.CVM_TEST_IMAGE_SYSTEMD_DOCKER,
  systemd: process.env.CVM_TEST_IMAGE_SYSTEMD,
  plain: process.env.CVM_TEST_IMAGE_PLAIN,
  danglingInit: process.env.CVM_TEST_IMAGE_DANGLING_INIT,
  hello: process.env.CVM_TEST_IMAGE_HELLO,
  helloTar: process.env.CVM_TEST_IMAGE_HELLO_TAR,
};
const noImages = Object.values(built).some((v) => !v) && "run through `npm test`, which builds the test images";

/** Runs a shell script in a throwaway container of the image (pulled from the registry when missing). */
async function inImage(image: string, script: string): Promise<string> {
  const { stdout } = await run("docker", [
    "run",
    "--rm",
    "--pull",
    "missing",
    "--network",
    "none",
    "--entrypoint",
    "/bin/sh",
    image,
    "-c",
    script,
  ]);
  return stdout.trim();
}

test("debian-systemd-docker: systemd at /sbin/init, Docker on demand with the baked images loaded as it starts, user dev, hello baked in", {
  skip: noImages,
}, async () => {
  const out = await inImage(
    built.systemdDocker as string,
    [
      "readlink -f /sbin/init",
      "ls /etc/systemd/system/multi-user.target.wants /etc/systemd/system/sockets.target.wants",
      "cat /etc/systemd/system/docker.service.d/cvm-preload.conf",
      "id dev",
      "cat /usr/share/cvm/images/hello.ref",
      "test -s /usr/share/cvm/images/hello.tar && echo baked",
      "command -v dockerd",
    ].join("; "),
  );
  assert.match(out, /^\/usr\/lib\/systemd\/systemd$/m);
  // Docker on demand: its socket at boot, the daemons on the first call, the baked images loaded as they start.
  assert.doesNotMatch(out, /^docker\.service$/m);
  assert.match(out, /^docker\.socket$/m);
  assert.match(out, /^cvm-docker-resume\.service$/m);
  assert.match(out, /^ExecStartPre=-\/usr\/libexec\/cvm\/preload-images$/m);
  assert.match(out, /uid=1000\(dev\).*\(sudo\).*\(docker\)/);
  assert.match(out, /^cvm\/hello:latest$/m);
  assert.match(out, /^baked$/m);
  assert.match(out, /^\/usr\/sbin\/dockerd$/m);
});

test("debian-systemd: systemd at /sbin/init, user dev, no Docker", { skip: noImages }, async () => {
  const out = await inImage(
    built.systemd as string,
    "readlink -f /sbin/init; id dev; command -v dockerd || echo no-docker",
  );
  assert.match(out, /^\/usr\/lib\/systemd\/systemd$/m);
  assert.match(out, /uid=1000\(dev\)/);
  assert.match(out, /^no-docker$/m);
});

test("debian-plain has no /sbin/init; debian-dangling-init's points nowhere", { skip: noImages }, async () => {
  const check = "if test -e /sbin/init; then echo present; else echo absent; fi; readlink /sbin/init || echo no-link";
  assert.equal(await inImage(built.plain as string, check), "absent\nno-link");
  assert.equal(await inImage(built.danglingInit as string, check), "absent\n/usr/lib/cvm/no-such-init");
});

test("hello runs echo, and its saved tarball names cvm/hello:latest", { skip: noImages }, async () => {
  assert.equal(await inImage(built.hello as string, "echo ok"), "ok");
  const { stdout } = await run("tar", ["-xOf", built.helloTar as string, "manifest.json"]);
  assert.deepEqual(JSON.parse(stdout)[0].RepoTags, ["cvm/hello:latest"]);
});

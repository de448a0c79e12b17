import assert from "node:assert/strict";
import { test } from "node:test";
import { loginAccount, loginEnvironment, loginShellOf, parsePasswd } from "./login-account.js";

const debian = parsePasswd(
  [
    "root:x:0:0:root:/root:/bin/bash",
    "daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin",
    "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin",
    "svc:x:1001:1001::/srv/svc:/usr/sbin/nologin",
    "dev:x:1000:1000:,,,:/home/dev:/bin/bash",
    "broken line",
  ].join("\n"),
);

test("the image's user is uid 1000 even when another ordinary account comes first", () => {
  assert.deepEqual(loginAccount(debian, "default"), {
    name: "dev",
    uid: 1000,
    gid: 1000,
    home: "/home/dev",
    shell: "/bin/bash",
    source: "image user",
  });
});

test("without uid 1000, the first ordinary account; nobody never counts", () => {
  const noDev = debian.filter((e) => e.name !== "dev");
  assert.equal(loginAccount(noDev, "default").name, "svc");
  const onlySystem = debian.filter((e) => e.uid < 1000 || e.uid === 65534);
  assert.deepEqual(loginAccount(onlySystem, "default"), {
    name: "root",
    uid: 0,
    gid: 0,
    home: "/root",
    shell: "/bin/bash",
    source: "no user in the image: root",
  });
});

test("root when asked, and root from nothing at all (an image without /etc/passwd)", () => {
  assert.equal(loginAccount(debian, "root").source, "asked for root");
  assert.deepEqual(loginAccount([], "default"), {
    name: "root",
    uid: 0,
    gid: 0,
    home: "/root",
    shell: "/bin/sh",
    source: "no user in the image: root",
  });
});

test("a login's variables; an account that refuses logins still gets a shell", () => {
  const dev = loginAccount(debian, "default");
  assert.deepEqual(loginEnvironment(dev), { HOME: "/home/dev", USER: "dev", LOGNAME: "dev", SHELL: "/bin/bash" });
  // nproc answers OMP_NUM_THREADS: a session in a CVM of 1.5 CPUs is told 2, one without a limit nothing.
  assert.equal(loginEnvironment(dev, 1.5).OMP_NUM_THREADS, "2");
  assert.equal(loginEnvironment(dev, 2).OMP_NUM_THREADS, "2");
  assert.equal(loginEnvironment(dev, 0).OMP_NUM_THREADS, undefined);
  const svc = debian.find((e) => e.name === "svc");
  assert.equal(svc && loginShellOf(svc), "/bin/sh");
});

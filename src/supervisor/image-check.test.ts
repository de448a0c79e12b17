import assert from "node:assert/strict";
import { test } from "node:test";
import { parsePasswd } from "../core/login-account.js";
import { defaultUser, presetDecision, verdictOf } from "./image-check.js";

const passwd = parsePasswd(
  [
    "root:x:0:0:root:/root:/bin/bash",
    "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin",
    "systemd-network:x:998:998::/:/usr/sbin/nologin",
    "dev:x:1000:1000:Dev:/home/dev:/bin/bash",
    "second:x:1001:1001::/home/second:/bin/bash",
    "",
  ].join("\n"),
);

test("default user: the image's configured user wins, by name or uid", () => {
  assert.deepEqual(defaultUser("second", passwd), { name: "second", uid: 1001, source: "image config" });
  assert.deepEqual(defaultUser("1000:1000", passwd), { name: "dev", uid: 1000, source: "image config" });
  assert.deepEqual(defaultUser("4242", passwd), { name: "4242", uid: 4242, source: "image config" });
});

test("default user: else the first account with uid 1000 or more, never nobody; else root", () => {
  assert.deepEqual(defaultUser(undefined, passwd), { name: "dev", uid: 1000, source: "/etc/passwd" });
  assert.deepEqual(defaultUser("", passwd.slice(0, 3)), { name: "root", uid: 0, source: "none found: root" });
});

test("presets: the first matching line in name order decides, /etc hides the same name below", () => {
  const files = [
    { directory: "/etc/systemd/system-preset", name: "90-systemd.preset", text: "disable *\n" },
    { directory: "/lib/systemd/system-preset", name: "90-systemd.preset", text: "enable *\n" },
    { directory: "/lib/systemd/system-preset", name: "50-docker.preset", text: "# docker\nenable docker.*\n" },
  ];
  assert.deepEqual(presetDecision(files, "docker.service"), {
    enable: true,
    line: "enable docker.*",
    file: "/lib/systemd/system-preset/50-docker.preset",
  });
  assert.equal(presetDecision(files.slice(0, 2), "docker.service")?.enable, false);
  assert.equal(presetDecision([], "docker.service"), undefined);
});

test("verdicts: systemd with Docker, systemd alone, another init, no init", () => {
  const systemd = {
    found: true as const,
    chain: ["/sbin/init", "/lib/systemd/systemd"],
    target: "/lib/systemd/systemd",
  };
  const enabled = { state: "enabled" as const, evidence: "" };
  const absent = { state: "absent" as const, evidence: "" };
  const cases = [
    { facts: { init: systemd, initIsSystemd: true, dockerService: enabled }, id: "cvm-systemd-docker" },
    { facts: { init: systemd, initIsSystemd: true, dockerService: absent }, id: "cvm-systemd" },
    { facts: { init: systemd, initIsSystemd: false, dockerService: enabled }, id: "cvm-other-init" },
    {
      facts: {
        init: { found: false as const, chain: ["/sbin/init"], reason: "/sbin/init does not exist" },
        initIsSystemd: false,
        dockerService: enabled,
      },
      id: "cvm-minimal-init",
    },
  ];
  for (const c of cases) assert.equal(verdictOf(c.facts).id, c.id);
  assert.match(verdictOf(cases[3].facts).summary, /\/sbin\/init does not exist/);
});

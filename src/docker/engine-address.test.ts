import assert from "node:assert/strict";
import { test } from "node:test";
import { CvmError } from "../core/errors.js";
import { engineOptions, isLocalEngine } from "./engine-address.js";

test("every way DOCKER_HOST is written reaches the same engine options", () => {
  const cases: [string, object][] = [
    ["unix:///var/run/docker.sock", { socketPath: "/var/run/docker.sock" }],
    ["/run/cvm/engine.sock", { socketPath: "/run/cvm/engine.sock" }],
    ["tcp://10.0.0.5:2375", { host: "10.0.0.5", port: 2375, protocol: "http" }],
    ["tcp://docker.internal", { host: "docker.internal", port: 2375, protocol: "http" }],
    ["http://127.0.0.1:2380/", { host: "127.0.0.1", port: 2380, protocol: "http" }],
    ["https://docker.example.com", { host: "docker.example.com", port: 2376, protocol: "https" }],
  ];
  for (const [address, options] of cases) assert.deepEqual(engineOptions(address), options, address);
});

test("an address that is no engine's is refused, naming what is accepted", () => {
  for (const address of ["docker.sock", "ssh://me@host", "tcp://", ""]) {
    assert.throws(
      () => engineOptions(address),
      (error: unknown) =>
        error instanceof CvmError && error.code === "BAD_REQUEST" && error.message.includes("tcp://host:port"),
      address,
    );
  }
});

test("only a socket's engine is local (its exec pids are this host's)", () => {
  assert.equal(isLocalEngine("unix:///var/run/docker.sock"), true);
  assert.equal(isLocalEngine("/var/run/docker.sock"), true);
  assert.equal(isLocalEngine("tcp://10.0.0.5:2375"), false);
});

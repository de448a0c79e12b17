import assert from "node:assert/strict";
import { test } from "node:test";
import { dockerdArguments, engineConfig, enginePaths, parseSubordinate } from "./engine.js";
import { bridgeName, networkRules, pickSubnet } from "./engine-network.js";

test("the remapped root's range comes from /etc/subuid", () => {
  const text = "someone:200000:65536\ndockremap:100000:65536\n";
  assert.deepEqual(parseSubordinate(text, "dockremap"), { start: 100000, size: 65536 });
  assert.equal(parseSubordinate("someone:1:2\n", "dockremap"), undefined);
});

test("the engine keeps everything under <dataDir>/engine, remaps root, and leaves the host's network alone", () => {
  const paths = enginePaths("/var/lib/cvm");
  const args = dockerdArguments(paths, { bridge: "cvm-12345678", address: "10.213.5.1/24", subnet: "10.213.5.0/24" });
  for (const expected of [
    "--userns-remap=default",
    "--data-root=/var/lib/cvm/engine/data",
    "--exec-root=/var/lib/cvm/engine/exec",
    "--pidfile=/var/lib/cvm/engine/dockerd.pid",
    "--host=unix:///var/lib/cvm/engine/docker.sock",
    "--storage-driver=overlay2",
    "--bridge=cvm-12345678",
    "--iptables=false",
    "--exec-opt=native.cgroupdriver=cgroupfs",
    "--cgroup-parent=/cvm",
    "--live-restore",
    "--config-file=/var/lib/cvm/engine/daemon.json",
  ]) {
    assert.ok(args.includes(expected), `dockerd needs ${expected}`);
  }
  assert.ok(!args.some((a) => a.includes("docker0")));
});

test("each data dir gets its own bridge name (at most 15 characters) and a /24 no one routes yet", () => {
  assert.ok(bridgeName("/var/lib/cvm").length <= 15);
  assert.notEqual(bridgeName("/var/lib/cvm"), bridgeName("/tmp/other"));
  const first = pickSubnet("/var/lib/cvm", "");
  const prefix = first.split(".").slice(0, 3).join(".");
  const routes = `default via 192.0.2.1 dev eth0\n${prefix}.0/24 dev other proto kernel\n172.17.0.0/16 dev docker0\n`;
  const second = pickSubnet("/var/lib/cvm", routes);
  assert.notEqual(second, first);
  assert.match(second, /^10\.213\.\d+\.0\/24$/);
});

test("network rules: NAT out, answers back, nothing to the node or to other CVMs", () => {
  const rules = networkRules({ bridge: "cvm-x", address: "10.213.5.1/24", subnet: "10.213.5.0/24" }).map(
    (r) => `${r.table} ${r.chain} ${r.rule.join(" ")}`,
  );
  assert.deepEqual(rules, [
    "nat POSTROUTING -s 10.213.5.0/24 ! -o cvm-x -j MASQUERADE",
    "filter FORWARD -i cvm-x -o cvm-x -j DROP",
    "filter FORWARD -i cvm-x ! -o cvm-x -j ACCEPT",
    "filter FORWARD -o cvm-x -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
    "filter INPUT -i cvm-x -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
    "filter INPUT -i cvm-x -j DROP",
  ]);
});

test("the engine takes only the runtimes from the node engine's daemon.json (sysbox registers itself there)", () => {
  const host = JSON.stringify({
    "data-root": "/srv/docker",
    hosts: ["tcp://0.0.0.0:2375"],
    runtimes: { "sysbox-runc": { path: "/usr/bin/sysbox-runc" } },
  });
  assert.deepEqual(engineConfig(host), { runtimes: { "sysbox-runc": { path: "/usr/bin/sysbox-runc" } } });
  assert.deepEqual(engineConfig(undefined), {});
  assert.deepEqual(engineConfig("not json"), {});
});

test("registries the installation names are reached over plain HTTP, and only those", () => {
  assert.deepEqual(engineConfig(undefined, ["registry.cvm.svc:5000"]), {
    "insecure-registries": ["registry.cvm.svc:5000"],
  });
  assert.deepEqual(engineConfig(JSON.stringify({ "insecure-registries": ["elsewhere:5000"] })), {});
});

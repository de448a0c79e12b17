import assert from "node:assert/strict";
import { test } from "node:test";
import { chainNames, closedNetworks, formatCidr, networkPolicyRules, ownerChain, parseCidr } from "./network-policy.js";

test("parseCidr: an address is a /32, a network keeps its prefix, anything else is refused", () => {
  assert.equal(formatCidr(parseCidr("10.1.2.3") ?? { address: 0, prefix: 0 }), "10.1.2.3/32");
  assert.equal(formatCidr(parseCidr(" 192.168.0.0/16 ") ?? { address: 0, prefix: 0 }), "192.168.0.0/16");
  assert.equal(formatCidr(parseCidr("0.0.0.0/0") ?? { address: 1, prefix: 1 }), "0.0.0.0/0");
  for (const bad of ["", "10.1.2", "10.1.2.256", "10.0.0.0/33", "10.0.0.0/", "a.b.c.d", "10.0.0.0/8/8", "::1"]) {
    assert.equal(parseCidr(bad), undefined, bad);
  }
  for (const closed of closedNetworks) assert.ok(parseCidr(closed), closed);
});

test("chain names stay within iptables' 28 characters and differ per owner and per installation", () => {
  const names = [ownerChain("0a1b2c3d", "usr_0123456789abcdef0123"), ownerChain("0a1b2c3d", "usr_other")];
  for (const name of [...names, ...Object.values(chainNames("0a1b2c3d"))]) assert.ok(name.length <= 28, name);
  assert.notEqual(names[0], names[1]);
  assert.notEqual(ownerChain("ffffffff", "usr_other"), names[1]);
});

const ada = { environmentId: "env_a1", ownerId: "usr_ada", address: "172.18.0.2", port: "veth1" };
const ada2 = { environmentId: "env_a2", ownerId: "usr_ada", address: "10.213.7.2", port: "veth2" };
const bob = { environmentId: "env_b1", ownerId: "usr_bob", address: "172.18.0.3" };

test("the policy: an owner's environments reach each other, the internet and the DNS servers; nothing private, not the node", () => {
  const rules = networkPolicyRules({
    tag: "0a1b2c3d",
    environments: [ada, ada2, bob],
    reach: "owner",
    allowed: ["10.9.0.0/16"],
    nameservers: ["10.255.255.53"],
    bridges: ["br-0123456789ab", "cvm-0a1b2c3d"],
  }).split("\n");
  const adaChain = ownerChain("0a1b2c3d", "usr_ada");
  const bobChain = ownerChain("0a1b2c3d", "usr_bob");
  assert.equal(rules[0], "*filter");
  assert.ok(rules.includes(`:${adaChain} - [0:0]`), "each owner's chain is declared, so a restore empties it first");
  assert.ok(rules.includes(`-A CVM-0a1b2c3d -m physdev --physdev-in veth1 -s 172.18.0.2/32 -g ${adaChain}`));
  assert.ok(rules.includes(`-A CVM-0a1b2c3d -s 172.18.0.3/32 -g ${bobChain}`), "by address where the port is unknown");
  const of = (chain: string) => rules.filter((r) => r.startsWith(`-A ${chain} `)).map((r) => r.slice(chain.length + 4));
  assert.deepEqual(of(adaChain).slice(0, 3), [
    "-d 172.18.0.2/32 -j ACCEPT",
    "-d 10.213.7.2/32 -j ACCEPT",
    "-d 10.9.0.0/16 -j ACCEPT",
  ]);
  assert.ok(!of(adaChain).includes("-d 172.18.0.3/32 -j ACCEPT"), "not another owner's");
  assert.deepEqual(of(bobChain).slice(0, 2), ["-d 172.18.0.3/32 -j ACCEPT", "-d 10.9.0.0/16 -j ACCEPT"]);
  assert.ok(of(adaChain).includes("-d 10.255.255.53/32 -p udp --dport 53 -j RETURN"));
  assert.ok(of(adaChain).includes("-d 172.16.0.0/12 -j DROP"));
  assert.ok(of(adaChain).includes("-d 169.254.0.0/16 -j DROP"), "no cloud metadata");
  assert.equal(of(adaChain).at(-1), "-j RETURN", "the internet is left to the engines' own rules");
  assert.deepEqual(of("CVM-0a1b2c3d-NODE"), [
    "-d 10.9.0.0/16 -j ACCEPT",
    "-d 10.255.255.53/32 -p udp --dport 53 -j ACCEPT",
    "-d 10.255.255.53/32 -p tcp --dport 53 -j ACCEPT",
    "-j DROP",
  ]);
  assert.equal(of("CVM-0a1b2c3d-IN")[0], "-m conntrack --ctstate RELATED,ESTABLISHED -j RETURN");
  assert.deepEqual(of("CVM-0a1b2c3d").slice(-2), ["-i br-0123456789ab -j DROP", "-i cvm-0a1b2c3d -j DROP"]);
  assert.deepEqual(of("CVM-0a1b2c3d-IN").slice(-2), ["-i br-0123456789ab -j DROP", "-i cvm-0a1b2c3d -j DROP"]);
  assert.equal(rules.at(-2), "COMMIT");
});

test("reach installation: every environment of the installation is open to every other", () => {
  const rules = networkPolicyRules({
    tag: "0a1b2c3d",
    environments: [ada, bob],
    reach: "installation",
    allowed: [],
    nameservers: [],
    bridges: [],
  });
  assert.ok(rules.includes(`-A ${ownerChain("0a1b2c3d", "usr_bob")} -d 172.18.0.2/32 -j ACCEPT`));
});

test("the first chain names its server's data dir in a rule that only counts; a path of other characters is not named", () => {
  const input = { tag: "0a1b2c3d", environments: [ada], reach: "owner" as const, allowed: [], nameservers: [] };
  const marked = networkPolicyRules({ ...input, bridges: ["br-1"], dataDir: "/var/lib/cvm" }).split("\n");
  const first = marked.findIndex((line) => line.startsWith(`-A ${chainNames("0a1b2c3d").forward} `));
  assert.equal(marked[first], "-A CVM-0a1b2c3d -m comment --comment cvm-data-dir:/var/lib/cvm");
  for (const dataDir of [undefined, "/srv/my data", 'relative/"quoted"']) {
    const rules = networkPolicyRules({ ...input, bridges: ["br-1"], dataDir });
    assert.doesNotMatch(rules, /cvm-data-dir/, String(dataDir));
  }
});

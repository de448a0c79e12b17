import assert from "node:assert/strict";
import { test } from "node:test";
import { credentialServer, type ImageReference, isImageReference, parseImageReference } from "./image-reference.js";

const hex64 = "0123456789abcdef".repeat(4);

const valid: [string, ImageReference][] = [
  ["debian", { path: "debian" }],
  ["library/debian:bookworm", { path: "library/debian", tag: "bookworm" }],
  ["127.0.0.1:5000/cvm/x:1", { domain: "127.0.0.1:5000", path: "cvm/x", tag: "1" }],
  ["localhost/a", { domain: "localhost", path: "a" }],
  ["localhost:5000/a", { domain: "localhost:5000", path: "a" }],
  [`ghcr.io/o/r@sha256:${hex64}`, { domain: "ghcr.io", path: "o/r", digest: `sha256:${hex64}` }],
  [`ghcr.io/o/r:v1.2@sha256:${hex64}`, { domain: "ghcr.io", path: "o/r", tag: "v1.2", digest: `sha256:${hex64}` }],
  ["[::1]:5000/a:b", { domain: "[::1]:5000", path: "a", tag: "b" }],
  [
    "registry.example.com/team/project/image:latest",
    { domain: "registry.example.com", path: "team/project/image", tag: "latest" },
  ],
  ["a.b/c", { domain: "a.b", path: "c" }],
  ["my-registry:443/x", { domain: "my-registry:443", path: "x" }],
  ["ubuntu:22.04", { path: "ubuntu", tag: "22.04" }],
  ["a_b__c.d-e---f", { path: "a_b__c.d-e---f" }],
  ["foo/bar:Tag_With.Mixed-Case", { path: "foo/bar", tag: "Tag_With.Mixed-Case" }],
  [`x:${"t".repeat(128)}`, { path: "x", tag: "t".repeat(128) }],
  ["x".repeat(255), { path: "x".repeat(255) }],
  [`a@sha512:${hex64}${hex64}`, { path: "a", digest: `sha512:${hex64}${hex64}` }],
  // Unregistered algorithms keep the grammar's rule: 32 or more hex digits.
  [`a@constructor:${hex64.slice(0, 32)}`, { path: "a", digest: `constructor:${hex64.slice(0, 32)}` }],
];

test("image references the distribution grammar accepts", () => {
  for (const [input, expected] of valid) {
    assert.deepEqual(parseImageReference(input), expected, input);
  }
});

const problems = {
  repository:
    "has an invalid repository name (lowercase letters, digits and separators '.', '_', '__', '-', in '/'-separated parts)",
  tag: "has an invalid tag (letters, digits, '_', '.', '-', at most 128, not starting with '.' or '-')",
  digest: "has an invalid digest (expected algorithm:hex, such as sha256:<64 hex digits>)",
};

const invalid: [string, string][] = [
  ["", "is required"],
  ["Debian", problems.repository],
  ["a:", problems.tag],
  ["a::b", problems.repository],
  ["-a", problems.repository],
  ["a-", problems.repository],
  ["a//b", problems.repository],
  ["a/", problems.repository],
  ["/a", problems.repository],
  ["a..b", problems.repository],
  ["a@sha256:short", problems.digest],
  [`a@sha256:${hex64.slice(0, 40)}`, problems.digest],
  [`a@sha256:${hex64}0`, problems.digest],
  [`a@sha256:${hex64.toUpperCase()}`, problems.digest],
  ["a@", problems.digest],
  [" debian", "must not have surrounding spaces"],
  ["debian ", "must not have surrounding spaces"],
  ["deb ian", problems.repository],
  ["debian:book worm", problems.tag],
  ["a:.tag", problems.tag],
  ["a:-tag", problems.tag],
  [`x:${"t".repeat(129)}`, problems.tag],
  ["x".repeat(256), "has a name longer than 255 characters"],
  [`registry.example.com/${"x".repeat(240)}`, "has a name longer than 255 characters"],
  [":tag", "has no repository name"],
  ["bad_host.com/a", 'has an invalid registry host "bad_host.com"'],
  ["-host.io/a", 'has an invalid registry host "-host.io"'],
  ["host.io:port/a", 'has an invalid registry host "host.io:port"'],
  ["ghcr.io/Owner/repo", problems.repository],
];

test("image references the distribution grammar refuses, each with its reason", () => {
  for (const [input, problem] of invalid) {
    const parsed = parseImageReference(input);
    assert.equal(isImageReference(parsed), false, input);
    assert.deepEqual(parsed, { problem }, input);
  }
});

test("isImageReference tells a reference from a problem", () => {
  assert.equal(isImageReference(parseImageReference("debian")), true);
  assert.equal(isImageReference({ problem: "x" }), false);
});

test("credentials are looked up by the image's registry host, Docker Hub's index for names without one", () => {
  assert.equal(credentialServer("registry.example.com:5000/team/dev:1"), "registry.example.com:5000");
  assert.equal(credentialServer("localhost/x"), "localhost");
  assert.equal(credentialServer("debian:12"), "https://index.docker.io/v1/");
  assert.equal(credentialServer("cvm/hello"), "https://index.docker.io/v1/");
});

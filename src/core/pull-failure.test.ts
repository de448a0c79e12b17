import assert from "node:assert/strict";
import { test } from "node:test";
import { classifyPullError, type PullFailure } from "./pull-failure.js";

test("engine pull errors, as Docker 20.10 words them, map to what the user is told", () => {
  const cases: [string, PullFailure][] = [
    ['Head "https://127.0.0.1:5000/v2/x/manifests/1": no basic auth credentials', "auth"],
    ["Get https://r.example/v2/: unauthorized: authentication required", "auth"],
    ["denied: requested access to the resource is denied", "auth"],
    ['Get "https://reg.example/v2/": x509: certificate signed by unknown authority', "tls"],
    ['Get "https://10.0.0.1:5000/v2/": http: server gave HTTP response to HTTPS client', "tls"],
    ["manifest for 127.0.0.1:5000/cvm/nope:1 not found: manifest unknown: manifest unknown", "not-found"],
    ["pull access denied for nope, repository does not exist or may require 'docker login'", "not-found"],
    ["write /var/lib/docker/tmp/GetImageBlob1: no space left on device", "disk-full"],
    ['Get "https://registry-1.docker.io/v2/": dial tcp: lookup registry-1.docker.io: no such host', "unreachable"],
    ['Get "http://127.0.0.1:5999/v2/": dial tcp 127.0.0.1:5999: connect: connection refused', "unreachable"],
    ["received unexpected HTTP status: 503 Service Unavailable", "transient"],
    ["sha256:4041abc not present", "other"],
    ["something nobody foresaw", "other"],
  ];
  for (const [message, expected] of cases) assert.equal(classifyPullError(message), expected, message);
});

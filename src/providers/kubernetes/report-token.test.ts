import assert from "node:assert/strict";
import { generateKeyPairSync, sign } from "node:crypto";
import { test } from "node:test";
import { keysFromJwks, reportAudience, verifyReportToken } from "./report-token.js";

const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
const { privateKey: otherKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
const jwks = JSON.stringify({
  keys: [{ ...publicKey.export({ format: "jwk" }), kid: "k1", use: "sig", alg: "RS256" }],
});
const keys = keysFromJwks(jwks);
// What the Kubernetes client hands over: the document already parsed.
assert.deepEqual([...keysFromJwks(JSON.parse(jwks)).keys()], [...keys.keys()]);
const now = 1_800_000_000;

/** A token as the kubelet's TokenRequest mints it for a Pod. */
function token(claims: Record<string, unknown>, key = privateKey, kid = "k1"): string {
  const part = (value: object) => Buffer.from(JSON.stringify(value)).toString("base64url");
  const body = `${part({ alg: "RS256", kid })}.${part({
    aud: [reportAudience],
    exp: now + 3600,
    iat: now,
    nbf: now,
    iss: "https://kubernetes.default.svc.cluster.local",
    "kubernetes.io": { namespace: "cvm", pod: { name: "cvm-env-1", uid: "uid-1" } },
    sub: "system:serviceaccount:cvm:default",
    ...claims,
  })}`;
  return `${body}.${sign("sha256", Buffer.from(body), key).toString("base64url")}`;
}

const pod = { namespace: "cvm", pod: "cvm-env-1", uid: "uid-1" };
const verifyAt = (value: string, identity: { namespace: string; pod: string; uid?: string } = pod, at = now) =>
  verifyReportToken(value, identity, (kid) => keys.get(kid), at);

test("the Pod's own token, for cvm's audience, signed by the cluster, is accepted", () => {
  assert.equal(verifyAt(token({})), true);
  assert.equal(verifyAt(token({}), { namespace: "cvm", pod: "cvm-env-1" }), true, "the Pod's uid unknown yet");
});

test("anything else is refused: another Pod, a deleted Pod's uid, another audience, expired, forged, malformed", () => {
  assert.equal(verifyAt(token({}), { ...pod, pod: "cvm-env-2" }), false);
  assert.equal(verifyAt(token({}), { ...pod, uid: "uid-of-the-next-pod" }), false);
  assert.equal(verifyAt(token({}), { ...pod, namespace: "elsewhere" }), false);
  assert.equal(verifyAt(token({ aud: ["https://kubernetes.default.svc"] })), false);
  assert.equal(verifyAt(token({}), pod, now + 3600 + 120), false);
  assert.equal(verifyAt(token({ nbf: now + 600 })), false);
  assert.equal(verifyAt(token({}, otherKey)), false);
  assert.equal(verifyAt(token({}, privateKey, "unknown-key")), false);
  assert.equal(verifyAt("not-a-token"), false);
  assert.equal(verifyAt("a.b.c"), false);
});

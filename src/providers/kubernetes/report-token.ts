/**
 * How a supervisor proves which environment's Pod it is: a service-account
 * token the kubelet projects into the Pod for cvm's audience and rotates
 * itself, bound to that Pod (its name and uid are claims). The server checks
 * it with the cluster's own signing keys (the service-account issuer's JWKS,
 * which every service account may read), so no Secret per environment is
 * made or read to authenticate reports, and a token outlives neither its
 * Pod nor its hour.
 */

import { createPublicKey, type JsonWebKey, type KeyObject, verify } from "node:crypto";

/** The audience the projected token is minted for; the API server itself refuses such a token. */
export const reportAudience = "cvm-supervisor-report";

/** Long enough that a slow kubelet rotation never lapses; the kubelet renews at 80 % of it. */
export const reportTokenSeconds = 3600;

export interface PodIdentity {
  namespace: string;
  pod: string;
  /** The Pod's uid, when the caller knows the Pod that should be reporting. */
  uid?: string;
}

interface JwtClaims {
  aud?: string | string[];
  exp?: number;
  nbf?: number;
  "kubernetes.io"?: { namespace?: string; pod?: { name?: string; uid?: string } };
}

const algorithms: Record<string, { hash: string; dsaEncoding?: "ieee-p1363" }> = {
  RS256: { hash: "sha256" },
  RS384: { hash: "sha384" },
  RS512: { hash: "sha512" },
  ES256: { hash: "sha256", dsaEncoding: "ieee-p1363" },
  ES384: { hash: "sha384", dsaEncoding: "ieee-p1363" },
};

function decodePart<T>(part: string): T {
  return JSON.parse(Buffer.from(part, "base64url").toString("utf8")) as T;
}

/**
 * Whether `token` is a valid report token of `identity`'s Pod, signed by one
 * of `keys` (by key id); never throws for a malformed token.
 */
export function verifyReportToken(
  token: string,
  identity: PodIdentity,
  keys: (kid: string | undefined) => KeyObject | undefined,
  nowSeconds = Date.now() / 1000,
): boolean {
  const parts = token.split(".");
  if (parts.length !== 3) return false;
  try {
    const header = decodePart<{ alg?: string; kid?: string }>(parts[0]);
    const algorithm = algorithms[header.alg ?? ""];
    const key = keys(header.kid);
    if (!algorithm || !key) return false;
    const signed = Buffer.from(`${parts[0]}.${parts[1]}`);
    const signature = Buffer.from(parts[2], "base64url");
    const valid = verify(
      algorithm.hash,
      signed,
      algorithm.dsaEncoding ? { key, dsaEncoding: algorithm.dsaEncoding } : key,
      signature,
    );
    if (!valid) return false;
    const claims = decodePart<JwtClaims>(parts[1]);
    const audiences = Array.isArray(claims.aud) ? claims.aud : [claims.aud];
    const skew = 60;
    const bound = claims["kubernetes.io"];
    return (
      audiences.includes(reportAudience) &&
      typeof claims.exp === "number" &&
      claims.exp + skew > nowSeconds &&
      (claims.nbf === undefined || claims.nbf - skew <= nowSeconds) &&
      bound?.namespace === identity.namespace &&
      bound.pod?.name === identity.pod &&
      (identity.uid === undefined || bound.pod.uid === identity.uid)
    );
  } catch {
    return false;
  }
}

/**
 * The issuer's signing keys by key id, from its JWKS document: the text, or
 * the object @kubernetes/client-node makes of it (its typing says string, but
 * it parses the JSON it receives).
 */
export function keysFromJwks(document: string | object): Map<string | undefined, KeyObject> {
  const parsed = typeof document === "string" ? JSON.parse(document) : document;
  const { keys } = parsed as { keys?: (JsonWebKey & { kid?: string; use?: string })[] };
  const byId = new Map<string | undefined, KeyObject>();
  for (const jwk of keys ?? []) {
    if (jwk.use && jwk.use !== "sig") continue;
    byId.set(jwk.kid, createPublicKey({ key: jwk, format: "jwk" }));
  }
  return byId;
}

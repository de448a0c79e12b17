/**
 * The test cluster's certificates, made with openssl per start: a CA, the
 * API server's serving certificate, client certificates (the admin, the
 * API server towards kubelets, a node's kubelet) and the service-account
 * key pair; and kubeconfig files that use them.
 */

import { execFile } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

async function openssl(dir: string, args: string[]): Promise<void> {
  await run("openssl", args, { cwd: dir });
}

/** A key and a certificate signed by the CA in `dir`: <name>.key and <name>.crt. */
export async function signCertificate(dir: string, name: string, subject: string, extensions: string): Promise<void> {
  writeFileSync(join(dir, `${name}.ext`), extensions);
  await openssl(dir, [
    "req",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-keyout",
    `${name}.key`,
    "-out",
    `${name}.csr`,
    "-subj",
    subject,
  ]);
  await openssl(dir, [
    "x509",
    "-req",
    "-in",
    `${name}.csr`,
    "-CA",
    "ca.crt",
    "-CAkey",
    "ca.key",
    "-CAcreateserial",
    "-out",
    `${name}.crt`,
    "-days",
    "2",
    "-extfile",
    `${name}.ext`,
  ]);
}

/**
 * A CA, the API server's serving certificate (valid for `addresses` too:
 * the node's own address when a real node reaches it), the admin's and the
 * API server's kubelet client certificates, and the service-account keys.
 */
export async function makeCertificates(dir: string, addresses: string[] = []): Promise<void> {
  await openssl(dir, [
    "req",
    "-x509",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-keyout",
    "ca.key",
    "-out",
    "ca.crt",
    "-days",
    "2",
    "-subj",
    "/CN=cvm-test-ca",
  ]);
  const ips = ["127.0.0.1", "10.0.0.1", ...addresses].map((ip) => `IP:${ip}`);
  const names = [
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
  ];
  await signCertificate(
    dir,
    "apiserver",
    "/CN=kube-apiserver",
    `subjectAltName=${[...ips, ...names.map((n) => `DNS:${n}`)].join(",")}\nextendedKeyUsage=serverAuth\n`,
  );
  await signCertificate(dir, "admin", "/O=system:masters/CN=cvm-test-admin", "extendedKeyUsage=clientAuth\n");
  await signCertificate(
    dir,
    "apiserver-kubelet",
    "/O=system:masters/CN=kube-apiserver-kubelet-client",
    "extendedKeyUsage=clientAuth\n",
  );
  await openssl(dir, ["genrsa", "-out", "sa.key", "2048"]);
  await openssl(dir, ["rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub"]);
}

export function kubeconfigText(
  server: string,
  dir: string,
  user: { cert?: string; key?: string; token?: string },
): string {
  const b64 = (file: string) => readFileSync(join(dir, file)).toString("base64");
  const credentials = user.token
    ? { token: user.token }
    : { "client-certificate-data": b64(user.cert ?? ""), "client-key-data": b64(user.key ?? "") };
  return JSON.stringify({
    apiVersion: "v1",
    kind: "Config",
    clusters: [{ name: "cvm-test", cluster: { server, "certificate-authority-data": b64("ca.crt") } }],
    users: [{ name: "cvm-test", user: credentials }],
    contexts: [{ name: "cvm-test", context: { cluster: "cvm-test", user: "cvm-test" } }],
    "current-context": "cvm-test",
  });
}

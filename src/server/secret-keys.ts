/**
 * Where the key that seals stored secrets comes from, never the database:
 * CVM_SECRET_KEY (on Kubernetes, from a Secret; every replica needs the same
 * one), or else `<data-dir>/secret.key`, made owner-only (0600) on first
 * start. Rotation: the current key file becomes `secret.key.previous` (or
 * the old key goes to CVM_SECRET_KEY_PREVIOUS) and a new key is made; the
 * server opens old values with the previous key and seals every one again
 * under the new key when it starts.
 */

import { randomBytes } from "node:crypto";
import { chmodSync, existsSync, readFileSync, renameSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { CvmError } from "../core/errors.js";
import { keyBytes, keyId } from "./secret-box.js";

export const secretKeyFile = (dataDir: string) => join(dataDir, "secret.key");
export const previousKeyFile = (dataDir: string) => join(dataDir, "secret.key.previous");

export interface SecretKeys {
  current: Buffer;
  previous: Buffer[];
  /** Where the current key came from, for the log (never the key). */
  source: string;
}

/** 32 bytes written as base64, base64url or hex. */
export function parseKey(text: string, where: string): Buffer {
  const trimmed = text.trim();
  const key = /^[0-9a-f]{64}$/i.test(trimmed) ? Buffer.from(trimmed, "hex") : Buffer.from(trimmed, "base64");
  if (key.length !== keyBytes) {
    throw new CvmError("BAD_REQUEST", `${where} must hold a ${keyBytes}-byte key in base64 or hex`, {
      detail: "Make one with: head -c 32 /dev/urandom | base64",
    });
  }
  return key;
}

export function newKeyText(): string {
  return `${randomBytes(keyBytes).toString("base64")}\n`;
}

function readKeyFile(path: string): Buffer {
  if ((statSync(path).mode & 0o077) !== 0) chmodSync(path, 0o600);
  return parseKey(readFileSync(path, "utf8"), path);
}

export function loadSecretKeys(dataDir: string, env: NodeJS.ProcessEnv = process.env): SecretKeys {
  const previousFromEnv = (env.CVM_SECRET_KEY_PREVIOUS ?? "")
    .split(",")
    .filter((text) => text.trim())
    .map((text) => parseKey(text, "CVM_SECRET_KEY_PREVIOUS"));
  if (env.CVM_SECRET_KEY) {
    return {
      current: parseKey(env.CVM_SECRET_KEY, "CVM_SECRET_KEY"),
      previous: previousFromEnv,
      source: "CVM_SECRET_KEY",
    };
  }
  const file = secretKeyFile(dataDir);
  // Exclusive create: two servers starting on one data dir never make two keys.
  if (!existsSync(file)) {
    try {
      writeFileSync(file, newKeyText(), { mode: 0o600, flag: "wx" });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
    }
  }
  const previous = existsSync(previousKeyFile(dataDir)) ? [readKeyFile(previousKeyFile(dataDir))] : [];
  return { current: readKeyFile(file), previous: [...previous, ...previousFromEnv], source: file };
}

/**
 * Rotates the key file of a data dir: the current key becomes the previous
 * one and a new key is written. The server seals every secret again at its
 * next start; then secret.key.previous may be deleted.
 */
export function rotateKeyFile(dataDir: string): { previousId: string; currentId: string } {
  const file = secretKeyFile(dataDir);
  if (!existsSync(file)) {
    throw new CvmError("NOT_FOUND", `${file} does not exist: this data dir has no key to rotate`);
  }
  if (existsSync(previousKeyFile(dataDir))) {
    throw new CvmError(
      "CONFLICT",
      `${previousKeyFile(dataDir)} still exists: start the server once (it seals every secret under the current key), then delete it and rotate again`,
    );
  }
  const old = readKeyFile(file);
  renameSync(file, previousKeyFile(dataDir));
  writeFileSync(file, newKeyText(), { mode: 0o600, flag: "wx" });
  return { previousId: keyId(old), currentId: keyId(readKeyFile(file)) };
}

/**
 * Secrets at rest (registry passwords): sealed with AES-256-GCM under a key
 * kept outside the database (./secret-keys.ts says where). A sealed value
 * names the key that sealed it, so after a rotation the previous key still
 * opens old values until they are sealed again under the new one. Each value
 * is bound to what it belongs to (the environment's id, as additional
 * authenticated data), so a sealed password copied onto another row does not
 * open there.
 */

import { createCipheriv, createDecipheriv, createHash, randomBytes } from "node:crypto";
import { CvmError } from "../core/errors.js";

const scheme = "cvm-aes256gcm";
const ivBytes = 12;
const tagBytes = 16;
export const keyBytes = 32;

/** A short public name for a key: the first 8 hex digits of its SHA-256 (never the key itself). */
export function keyId(key: Buffer): string {
  return createHash("sha256").update(key).digest("hex").slice(0, 8);
}

/** Whether a stored value is sealed at all (values stored before sealing existed are plain). */
export function isSealed(value: string): boolean {
  return value.startsWith(`${scheme}:`);
}

export class SecretBox {
  private readonly keys = new Map<string, Buffer>();
  readonly currentKeyId: string;

  /** `current` seals; it and every `previous` key open. */
  constructor(
    private readonly current: Buffer,
    previous: readonly Buffer[] = [],
  ) {
    for (const key of [current, ...previous]) {
      if (key.length !== keyBytes) throw new Error(`a secret key is ${keyBytes} bytes, not ${key.length}`);
      this.keys.set(keyId(key), key);
    }
    this.currentKeyId = keyId(current);
  }

  /** `cvm-aes256gcm:<key id>:<iv>.<tag>.<ciphertext>`, base64url. */
  seal(plain: string, context: string): string {
    const iv = randomBytes(ivBytes);
    const cipher = createCipheriv("aes-256-gcm", this.current, iv, { authTagLength: tagBytes });
    cipher.setAAD(Buffer.from(context));
    const sealed = Buffer.concat([cipher.update(plain, "utf8"), cipher.final()]);
    const parts = [iv, cipher.getAuthTag(), sealed].map((b) => b.toString("base64url")).join(".");
    return `${scheme}:${this.currentKeyId}:${parts}`;
  }

  /** The plain value; a value stored before sealing existed comes back as it is. */
  open(value: string, context: string): string {
    if (!isSealed(value)) return value;
    const [, id, parts] = value.split(":");
    const key = this.keys.get(id);
    if (!key) {
      throw new CvmError(
        "UNAVAILABLE",
        `A stored secret is sealed with key ${id}, which this server does not have (it has ${[...this.keys.keys()].join(", ")})`,
        {
          detail:
            "Give the server the key file it was sealed with (<data-dir>/secret.key, or secret.key.previous after a rotation) or set CVM_SECRET_KEY / CVM_SECRET_KEY_PREVIOUS.",
        },
      );
    }
    const [iv, tag, sealed] = (parts ?? "").split(".").map((part) => Buffer.from(part, "base64url"));
    try {
      const decipher = createDecipheriv("aes-256-gcm", key, iv, { authTagLength: tagBytes });
      decipher.setAAD(Buffer.from(context));
      decipher.setAuthTag(tag);
      return Buffer.concat([decipher.update(sealed), decipher.final()]).toString("utf8");
    } catch (error) {
      throw new CvmError("UNAVAILABLE", "A stored secret does not open: it was altered or belongs elsewhere", {
        cause: error,
      });
    }
  }

  /** Whether a stored value is sealed under the current key (rotation leaves the others to seal again). */
  sealedWithCurrent(value: string): boolean {
    return value.startsWith(`${scheme}:${this.currentKeyId}:`);
  }
}

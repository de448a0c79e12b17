import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { chmodSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { CvmError } from "../core/errors.js";
import { isSealed, keyId, SecretBox } from "./secret-box.js";
import { loadSecretKeys, parseKey, previousKeyFile, rotateKeyFile, secretKeyFile } from "./secret-keys.js";

const key = () => randomBytes(32);

test("sealing: AES-256-GCM under a named key, bound to its context; a fresh IV each time", () => {
  const box = new SecretBox(key());
  const sealed = box.seal("hunter2", "environment/env_1/registry-password");
  assert.match(sealed, new RegExp(`^cvm-aes256gcm:${box.currentKeyId}:[\\w-]{16}\\.[\\w-]{22}\\.[\\w-]+$`));
  assert.equal(sealed.includes("hunter2"), false);
  assert.notEqual(box.seal("hunter2", "environment/env_1/registry-password"), sealed);
  assert.equal(box.open(sealed, "environment/env_1/registry-password"), "hunter2");
  assert.equal(isSealed(sealed), true);
  assert.equal(box.sealedWithCurrent(sealed), true);
  // Copied to another environment's row, it does not open; altered, neither.
  assert.throws(() => box.open(sealed, "environment/env_2/registry-password"), /does not open/);
  const tampered = sealed.slice(0, -2) + (sealed.endsWith("A") ? "BB" : "AA");
  assert.throws(() => box.open(tampered, "environment/env_1/registry-password"), /does not open/);
  // A value stored before sealing existed reads as it is (and start-up seals it).
  assert.equal(box.open("plain", "environment/env_1/registry-password"), "plain");
});

test("rotation: the previous key opens old values, the current one seals; an unknown key is named", () => {
  const [old, fresh] = [key(), key()];
  const sealedBefore = new SecretBox(old).seal("pw", "c");
  const rotated = new SecretBox(fresh, [old]);
  assert.equal(rotated.open(sealedBefore, "c"), "pw");
  assert.equal(rotated.sealedWithCurrent(sealedBefore), false);
  const error = (() => {
    try {
      new SecretBox(fresh).open(sealedBefore, "c");
    } catch (e) {
      return e;
    }
  })();
  assert.ok(error instanceof CvmError);
  assert.match(error.message, new RegExp(`sealed with key ${keyId(old)}`));
  assert.throws(() => new SecretBox(randomBytes(16)), /32 bytes/);
});

test("keys: a 0600 key file made on first start and kept; CVM_SECRET_KEY wins; rotate-secret-key", () => {
  const dir = mkdtempSync(join(tmpdir(), "cvm-keys-"));
  try {
    const first = loadSecretKeys(dir, {});
    assert.equal(statSync(secretKeyFile(dir)).mode & 0o777, 0o600);
    assert.deepEqual(loadSecretKeys(dir, {}).current, first.current, "the same key at every start");
    assert.equal(first.source, secretKeyFile(dir));

    const fromEnv = randomBytes(32);
    const envKeys = loadSecretKeys(dir, { CVM_SECRET_KEY: fromEnv.toString("base64") });
    assert.deepEqual(envKeys.current, fromEnv);
    assert.equal(envKeys.source, "CVM_SECRET_KEY");
    assert.deepEqual(parseKey(fromEnv.toString("hex"), "x"), fromEnv, "hex too");
    assert.throws(() => parseKey("c2hvcnQ=", "CVM_SECRET_KEY"), /32-byte key/);

    const { previousId, currentId } = rotateKeyFile(dir);
    assert.equal(previousId, keyId(first.current));
    const after = loadSecretKeys(dir, {});
    assert.equal(keyId(after.current), currentId);
    assert.deepEqual(after.previous, [first.current]);
    assert.throws(() => rotateKeyFile(dir), /secret\.key\.previous still exists/);
    // A key file left readable by others is made owner-only again.
    chmodSync(previousKeyFile(dir), 0o644);
    loadSecretKeys(dir, {});
    assert.equal(statSync(previousKeyFile(dir)).mode & 0o777, 0o600);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

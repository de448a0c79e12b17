import assert from "node:assert/strict";
import { test } from "node:test";
import { hashPassword, newSecret, secretHash, verifyPassword } from "./accounts.js";

test("passwords: scrypt with its parameters and salt in the hash; only the right password verifies", async () => {
  const hash = await hashPassword("correct horse battery");
  assert.match(hash, /^scrypt\$16384\$8\$1\$[A-Za-z0-9_-]{22}\$[A-Za-z0-9_-]{86}$/);
  assert.notEqual(await hashPassword("correct horse battery"), hash, "a fresh salt each time");
  assert.equal(await verifyPassword("correct horse battery", hash), true);
  assert.equal(await verifyPassword("correct horse batterY", hash), false);
  assert.equal(await verifyPassword("anything", "md5$abc"), false, "unknown schemes never verify");
});

test("token secrets: cvm_ and 32 random bytes; only a SHA-256 is kept", () => {
  const secret = newSecret();
  assert.match(secret, /^cvm_[A-Za-z0-9_-]{43}$/);
  assert.notEqual(newSecret(), secret);
  assert.match(secretHash(secret), /^[0-9a-f]{64}$/);
  assert.equal(secretHash(secret), secretHash(secret));
});

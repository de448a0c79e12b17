import assert from "node:assert/strict";
import { test } from "node:test";
import { keyBytes, withControl } from "./terminal-keys.js";

test("withControl: letters and the punctuation of ASCII's control block, anything else as typed", () => {
  assert.equal(withControl("c"), "\x03");
  assert.equal(withControl("C"), "\x03");
  assert.equal(withControl("d"), "\x04");
  assert.equal(withControl("["), "\x1b");
  assert.equal(withControl(" "), "\x00");
  assert.equal(withControl("1"), "1");
  assert.equal(withControl("ab"), "ab");
});

test("keyBytes: Esc, Tab, and arrows in either cursor mode", () => {
  assert.equal(keyBytes("Esc", false), "\x1b");
  assert.equal(keyBytes("Tab", false), "\t");
  assert.equal(keyBytes("Up", false), "\x1b[A");
  assert.equal(keyBytes("Left", true), "\x1bOD");
});

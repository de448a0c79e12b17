import assert from "node:assert/strict";
import { test } from "node:test";
import { CvmError } from "./errors.js";
import { chooseRuntime, resolveRuntime } from "./isolation-runtime.js";
import type { RuntimeChoice } from "./settings.js";

const plain = ["io.containerd.runc.v2", "io.containerd.runtime.v1.linux", "runc"];
const withSysbox = [...plain, "sysbox-runc"];

test("the runtime each setting picks, against what the engine lists", () => {
  const cases: [RuntimeChoice, string[], string][] = [
    ["auto", plain, "userns"],
    ["auto", withSysbox, "sysbox"],
    ["userns", withSysbox, "userns"],
    ["userns", plain, "userns"],
    ["sysbox", withSysbox, "sysbox"],
  ];
  for (const [choice, runtimes, expected] of cases) {
    assert.equal(chooseRuntime(choice, runtimes), expected);
    assert.equal(resolveRuntime(choice, runtimes), expected);
  }
});

test("without the engine's list, auto means the built-in userns and a named runtime is taken as named", () => {
  assert.equal(resolveRuntime("auto"), "userns");
  assert.equal(resolveRuntime("userns"), "userns");
  assert.equal(resolveRuntime("sysbox"), "sysbox");
});

test("sysbox asked for where the engine has none: a clear error, not a silent fallback", () => {
  assert.equal(resolveRuntime("sysbox", plain), "sysbox");
  assert.throws(
    () => chooseRuntime("sysbox", plain),
    (error: unknown) =>
      error instanceof CvmError && error.code === "UNAVAILABLE" && /no sysbox-runc/.test(error.message),
  );
});

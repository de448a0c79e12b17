import assert from "node:assert/strict";
import { test } from "node:test";
import { CvmError } from "../core/errors.js";
import { chooseRuntime } from "./isolation-runtime.js";

const plain = ["io.containerd.runc.v2", "io.containerd.runtime.v1.linux", "runc"];
const withSysbox = [...plain, "sysbox-runc"];

test("the runtime each setting picks, against what the engine lists", () => {
  const cases: [Parameters<typeof chooseRuntime>[0], string[], string][] = [
    ["auto", plain, "userns"],
    ["auto", withSysbox, "sysbox"],
    ["userns", withSysbox, "userns"],
    ["userns", plain, "userns"],
    ["sysbox", withSysbox, "sysbox"],
  ];
  for (const [choice, runtimes, expected] of cases) assert.equal(chooseRuntime(choice, runtimes), expected);
});

test("sysbox asked for where the engine has none: a clear error, not a silent fallback", () => {
  assert.throws(
    () => chooseRuntime("sysbox", plain),
    (error: unknown) =>
      error instanceof CvmError && error.code === "UNAVAILABLE" && /no sysbox-runc/.test(error.message),
  );
});

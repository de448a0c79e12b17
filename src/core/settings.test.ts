import assert from "node:assert/strict";
import { test } from "node:test";
import { defaultSettings, type InfrastructureSettings, settingsProblems, supervisorCapabilities } from "./settings.js";

type Case = [string, (s: InfrastructureSettings) => unknown, { field: string; detail: string }[]];

const cases: Case[] = [
  ["the defaults", () => undefined, []],
  ["CVMs on with the built-in runtime", (s) => Object.assign(s, { cvmEnabled: true, runtime: "userns" }), []],
  ["sysbox", (s) => Object.assign(s, { runtime: "sysbox" }), []],
  [
    "capabilities instead of privileged",
    (s) =>
      Object.assign(s, {
        supervisorPrivileges: { mode: "capabilities", capabilities: ["SYS_ADMIN", "CAP_NET_ADMIN"] },
      }),
    [],
  ],
  ["equal minimum and maximum", (s) => Object.assign(s.limits, { minCpu: 2, maxCpu: 2 }), []],
  [
    "cvmEnabled not a boolean",
    (s) => Object.assign(s, { cvmEnabled: "yes" }),
    [{ field: "cvmEnabled", detail: "must be true or false" }],
  ],
  ["FUSE and TUN turned off", (s) => Object.assign(s, { fuseDevice: false, tunDevice: false }), []],
  [
    "FUSE and TUN toggles not booleans",
    (s) => Object.assign(s, { fuseDevice: "off", tunDevice: 0 }),
    [
      { field: "fuseDevice", detail: "must be true or false" },
      { field: "tunDevice", detail: "must be true or false" },
    ],
  ],
  [
    "an unknown runtime",
    (s) => Object.assign(s, { runtime: "gvisor" }),
    [{ field: "runtime", detail: "must be one of auto, sysbox, userns" }],
  ],
  [
    "an unknown privilege mode",
    (s) => Object.assign(s.supervisorPrivileges, { mode: "root" }),
    [{ field: "supervisorPrivileges.mode", detail: "must be privileged or capabilities" }],
  ],
  [
    "names that are not capabilities",
    (s) => Object.assign(s.supervisorPrivileges, { capabilities: ["SYS_ADMIN", "sys_admin", "CAP_", "NET ADMIN", 7] }),
    [{ field: "supervisorPrivileges.capabilities", detail: "not capability names: sys_admin, CAP_, NET ADMIN, 7" }],
  ],
  [
    "capabilities mode with none listed",
    (s) => Object.assign(s, { supervisorPrivileges: { mode: "capabilities", capabilities: [] } }),
    [{ field: "supervisorPrivileges.capabilities", detail: "must list at least one capability" }],
  ],
  ["privileged mode with none listed", (s) => Object.assign(s.supervisorPrivileges, { capabilities: [] }), []],
  [
    "capabilities not a list",
    (s) => Object.assign(s.supervisorPrivileges, { capabilities: "SYS_ADMIN" }),
    [{ field: "supervisorPrivileges.capabilities", detail: "must be a list of capability names" }],
  ],
  [
    "supervisorPrivileges missing",
    (s) => Object.assign(s, { supervisorPrivileges: null }),
    [{ field: "supervisorPrivileges", detail: "must be an object with mode and capabilities" }],
  ],
  [
    "limits missing",
    (s) => Object.assign(s, { limits: undefined }),
    [{ field: "limits", detail: "must be an object with the minimum and maximum sizes" }],
  ],
  [
    "a minimum above its maximum",
    (s) => Object.assign(s.limits, { minMemoryGiB: 65 }),
    [{ field: "limits.minMemoryGiB", detail: "must not exceed maxMemoryGiB" }],
  ],
  [
    "zero, negative, infinite and non-numeric limits",
    (s) => Object.assign(s.limits, { minCpu: 0, maxCpu: -1, minDiskGiB: Number.POSITIVE_INFINITY, maxDiskGiB: "500" }),
    [
      { field: "limits.minCpu", detail: "must be a positive number" },
      { field: "limits.maxCpu", detail: "must be a positive number" },
      { field: "limits.minDiskGiB", detail: "must be a positive number" },
      { field: "limits.maxDiskGiB", detail: "must be a positive number" },
    ],
  ],
  [
    "several problems at once, each on its field",
    (s) => Object.assign(s, { cvmEnabled: null, runtime: "", limits: { ...s.limits, minCpu: 32 } }),
    [
      { field: "cvmEnabled", detail: "must be true or false" },
      { field: "runtime", detail: "must be one of auto, sysbox, userns" },
      { field: "limits.minCpu", detail: "must not exceed maxCpu" },
    ],
  ],
  ["processes sized to the node, or set", (s) => Object.assign(s.limits, { pids: 4096 }), []],
  [
    "a process limit that is not a whole number",
    (s) => Object.assign(s.limits, { pids: 1.5 }),
    [{ field: "limits.pids", detail: "must be a whole number, 0 or more (0: sized to the node)" }],
  ],
  [
    "quotas: negative, fractional environments, not numbers",
    (s) => Object.assign(s.quotas, { environments: 1.5, runningCpu: -1, runningMemoryGiB: "8", terminals: 3 }),
    [
      { field: "quotas.environments", detail: "must be a whole number, 0 or more (0: no quota)" },
      { field: "quotas.runningCpu", detail: "must be a number, 0 or more (0: no quota)" },
      { field: "quotas.runningMemoryGiB", detail: "must be a number, 0 or more (0: no quota)" },
    ],
  ],
  ["no quotas at all", (s) => Object.assign(s.quotas, { environments: 0, runningCpu: 0, runningMemoryGiB: 0 }), []],
  [
    "every environment may reach every other, and two networks are opened",
    (s) => Object.assign(s.network, { reach: "installation", allowedNetworks: ["10.1.2.3", "192.168.0.0/16"] }),
    [],
  ],
  [
    "an unknown reach and networks that are not networks",
    (s) => Object.assign(s.network, { reach: "everyone", allowedNetworks: ["10.1.2.3", "10.0.0.0/33", "example.com"] }),
    [
      { field: "network.reach", detail: "must be one of owner, installation" },
      {
        field: "network.allowedNetworks",
        detail: 'must be an IPv4 address or network, such as 10.1.2.3 or 10.1.0.0/16: not "10.0.0.0/33", "example.com"',
      },
    ],
  ],
];

test("settingsProblems: each problem on its field, none for valid settings, no throw on malformed ones", () => {
  for (const [label, change, expected] of cases) {
    const settings = structuredClone(defaultSettings);
    change(settings);
    assert.deepEqual(settingsProblems(settings), expected, label);
  }
});

test("defaults: CVMs off, automatic runtime, the supervisor's capability list", () => {
  assert.equal(defaultSettings.cvmEnabled, false);
  assert.equal(defaultSettings.runtime, "auto");
  assert.deepEqual(defaultSettings.supervisorPrivileges.capabilities, [...supervisorCapabilities]);
  assert.ok(!supervisorCapabilities.includes("SYS_RESOURCE" as never), "SYS_RESOURCE is missing on these machines");
  assert.deepEqual(settingsProblems(defaultSettings), []);
  assert.equal(defaultSettings.limits.pids, 0, "sized to the node");
  assert.deepEqual(defaultSettings.network, { reach: "owner", allowedNetworks: [] });
});

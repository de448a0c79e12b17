import assert from "node:assert/strict";
import { test } from "node:test";
import {
  actionAllowed,
  assertActionAllowed,
  canTransition,
  cpuCount,
  defaultResources,
  type EnvironmentAction,
  type EnvironmentSpec,
  type EnvironmentState,
  environmentStates,
  nameProblem,
  resolveSpec,
  specProblems,
  unfinishedBuildKind,
} from "./environment.js";
import { CvmError } from "./errors.js";
import { defaultSettings, type EnvironmentLimits } from "./settings.js";

/** The life of ARCHITECTURE.md, written out: every state and where it may go next. */
const allowed: Record<EnvironmentState, EnvironmentState[]> = {
  queued: ["pulling", "starting", "failed", "stopping", "deleting"],
  pulling: ["creating", "failed", "stopping", "deleting"],
  creating: ["starting", "failed", "stopping", "deleting"],
  starting: ["running", "failed", "stopping", "deleting"],
  running: ["stopping", "queued", "failed", "deleting"],
  stopping: ["stopped", "failed", "deleting"],
  stopped: ["starting", "queued", "failed", "deleting"],
  failed: ["starting", "queued", "deleting"],
  deleting: ["deleted", "failed"],
  deleted: [],
};

test("transitions: every pair of states is allowed or refused as the life cycle says", () => {
  for (const from of environmentStates) {
    for (const to of environmentStates) {
      assert.equal(canTransition(from, to), allowed[from].includes(to), `${from} -> ${to}`);
    }
  }
});

test("transitions: a deleted environment goes nowhere; every other state can be deleted", () => {
  for (const from of environmentStates) {
    assert.equal(canTransition(from, "deleting"), from !== "deleted" && from !== "deleting", from);
  }
  assert.deepEqual(
    environmentStates.filter((to) => canTransition("deleted", to)),
    [],
  );
});

/** Which states each action may begin from, and where it goes first. */
const actionRules: Record<EnvironmentAction, { from: EnvironmentState[]; to: EnvironmentState }> = {
  start: { from: ["stopped", "failed"], to: "starting" },
  stop: { from: ["queued", "pulling", "creating", "starting", "running"], to: "stopping" },
  rebuild: { from: ["stopped", "running", "failed"], to: "queued" },
  delete: {
    from: ["queued", "pulling", "creating", "starting", "running", "stopping", "stopped", "failed"],
    to: "deleting",
  },
};

test("actions: allowed from their states, refused from every other with a 409 naming the state", () => {
  for (const [action, rule] of Object.entries(actionRules) as [EnvironmentAction, (typeof actionRules)["start"]][]) {
    for (const state of environmentStates) {
      if (rule.from.includes(state)) {
        assert.equal(assertActionAllowed(action, state), rule.to, `${action} from ${state}`);
        assert.ok(canTransition(state, rule.to), `${action} from ${state} must be a transition the life cycle allows`);
        continue;
      }
      assert.throws(
        () => assertActionAllowed(action, state),
        (error: unknown) => {
          assert.ok(error instanceof CvmError);
          assert.equal(error.code, "CONFLICT");
          assert.equal(error.status, 409);
          assert.equal(error.message, `Cannot ${action} an environment that is ${state}`);
          assert.equal(error.detail, `${action} is allowed from: ${rule.from.join(", ")}`);
          return true;
        },
        `${action} from ${state}`,
      );
    }
  }
});

const names: [unknown, string | undefined][] = [
  ["dev", undefined],
  ["a", undefined],
  ["0", undefined],
  ["my-env-2", undefined],
  ["a--b", undefined],
  ["x".repeat(63), undefined],
  ["x".repeat(64), "must be at most 63 characters (a DNS label)"],
  ["", "is required"],
  [undefined, "is required"],
  [42, "is required"],
  ["Dev", "must be a DNS label: lowercase letters, digits and '-', starting and ending with a letter or digit"],
  ["-dev", "must be a DNS label: lowercase letters, digits and '-', starting and ending with a letter or digit"],
  ["dev-", "must be a DNS label: lowercase letters, digits and '-', starting and ending with a letter or digit"],
  ["my_env", "must be a DNS label: lowercase letters, digits and '-', starting and ending with a letter or digit"],
  ["my.env", "must be a DNS label: lowercase letters, digits and '-', starting and ending with a letter or digit"],
  ["my env", "must be a DNS label: lowercase letters, digits and '-', starting and ending with a letter or digit"],
  ["dév", "must be a DNS label: lowercase letters, digits and '-', starting and ending with a letter or digit"],
  ["dev\n", "must be a DNS label: lowercase letters, digits and '-', starting and ending with a letter or digit"],
];

test("names: DNS labels only", () => {
  for (const [name, problem] of names) {
    assert.equal(nameProblem(name), problem, JSON.stringify(name));
  }
});

const limits: EnvironmentLimits = {
  minCpu: 0.5,
  maxCpu: 8,
  minMemoryGiB: 1,
  maxMemoryGiB: 32,
  minDiskGiB: 5,
  maxDiskGiB: 100,
  pids: 0,
};
const good: EnvironmentSpec = { name: "dev", image: "debian:bookworm", cvm: false, cpu: 2, memoryGiB: 4, diskGiB: 20 };

const specCases: [string, Partial<EnvironmentSpec> | Record<string, unknown>, { field: string; detail: string }[]][] = [
  ["a good spec", good, []],
  ["a CVM", { ...good, cvm: true }, []],
  ["cvm left out", { ...good, cvm: undefined }, []],
  ["sizes at the minimums", { ...good, cpu: 0.5, memoryGiB: 1, diskGiB: 5 }, []],
  ["sizes at the maximums", { ...good, cpu: 8, memoryGiB: 32, diskGiB: 100 }, []],
  ["cpu under", { ...good, cpu: 0.25 }, [{ field: "cpu", detail: "must be at least 0.5 CPUs" }]],
  ["cpu over", { ...good, cpu: 8.5 }, [{ field: "cpu", detail: "must be at most 8 CPUs (the limit an admin set)" }]],
  ["memory under", { ...good, memoryGiB: 0.5 }, [{ field: "memoryGiB", detail: "must be at least 1 GiB" }]],
  [
    "memory over",
    { ...good, memoryGiB: 33 },
    [{ field: "memoryGiB", detail: "must be at most 32 GiB (the limit an admin set)" }],
  ],
  ["disk under", { ...good, diskGiB: 4 }, [{ field: "diskGiB", detail: "must be at least 5 GiB" }]],
  [
    "disk over",
    { ...good, diskGiB: 101 },
    [{ field: "diskGiB", detail: "must be at most 100 GiB (the limit an admin set)" }],
  ],
  ["cpu not a number", { ...good, cpu: "2" }, [{ field: "cpu", detail: "must be a number" }]],
  ["cpu NaN", { ...good, cpu: Number.NaN }, [{ field: "cpu", detail: "must be a number" }]],
  ["cpu infinite", { ...good, cpu: Number.POSITIVE_INFINITY }, [{ field: "cpu", detail: "must be a number" }]],
  ["cvm not a boolean", { ...good, cvm: "yes" }, [{ field: "cvm", detail: "must be true or false" }]],
  ["image missing", { ...good, image: undefined }, [{ field: "image", detail: "is required" }]],
  ["image empty", { ...good, image: "" }, [{ field: "image", detail: "is required" }]],
  [
    "image uppercase",
    { ...good, image: "Debian" },
    [
      {
        field: "image",
        detail:
          "has an invalid repository name (lowercase letters, digits and separators '.', '_', '__', '-', in '/'-separated parts)",
      },
    ],
  ],
  [
    "a bad name",
    { ...good, name: "-dev" },
    [
      {
        field: "name",
        detail: "must be a DNS label: lowercase letters, digits and '-', starting and ending with a letter or digit",
      },
    ],
  ],
  [
    "everything wrong at once, each on its field",
    { name: "", image: "a:", cvm: 1, cpu: 0, memoryGiB: 1000, diskGiB: -1 },
    [
      { field: "name", detail: "is required" },
      {
        field: "image",
        detail: "has an invalid tag (letters, digits, '_', '.', '-', at most 128, not starting with '.' or '-')",
      },
      { field: "cvm", detail: "must be true or false" },
      { field: "cpu", detail: "must be at least 0.5 CPUs" },
      { field: "memoryGiB", detail: "must be at most 32 GiB (the limit an admin set)" },
      { field: "diskGiB", detail: "must be at least 5 GiB" },
    ],
  ],
];

test("specs: every problem is reported on its field", () => {
  for (const [label, input, expected] of specCases) {
    assert.deepEqual(specProblems(input as Partial<EnvironmentSpec>, limits), expected, label);
  }
});

test("resolveSpec: fills defaults, keeps what was given, returns only the spec", () => {
  assert.deepEqual(resolveSpec({ name: "dev", image: "debian" }, defaultSettings.limits), {
    name: "dev",
    image: "debian",
    cvm: false,
    ...defaultResources,
  });
  assert.deepEqual(resolveSpec({ ...good, cpu: undefined, cvm: true }, limits), {
    ...good,
    cvm: true,
    cpu: defaultResources.cpu,
  });
  const withExtras = {
    ...good,
    id: "env_forged",
    ownerId: "usr_someone",
    state: "running",
  } as Partial<EnvironmentSpec>;
  assert.deepEqual(resolveSpec(withExtras, limits), good);
});

test("resolveSpec: defaults bend to the admin's limits; explicit sizes do not", () => {
  const small: EnvironmentLimits = { ...limits, maxCpu: 1, maxMemoryGiB: 2, minDiskGiB: 50 };
  assert.deepEqual(resolveSpec({ name: "dev", image: "debian" }, small), {
    name: "dev",
    image: "debian",
    cvm: false,
    cpu: 1,
    memoryGiB: 2,
    diskGiB: 50,
  });
  assert.throws(
    () => resolveSpec({ name: "dev", image: "debian", cpu: 2 }, small),
    (error: unknown) =>
      error instanceof CvmError &&
      error.code === "BAD_REQUEST" &&
      error.message === "Invalid environment: cpu: must be at most 1 CPU (the limit an admin set)" &&
      error.validations?.[0].field === "cpu",
  );
});

test("resolveSpec: one 400 lists every problem", () => {
  assert.throws(
    () => resolveSpec({ name: "Bad Name", image: "a::b", cpu: 100 }, limits),
    (error: unknown) => {
      assert.ok(error instanceof CvmError);
      assert.equal(error.status, 400);
      assert.deepEqual(
        error.validations?.map((v) => v.field),
        ["name", "image", "cpu"],
      );
      assert.match(error.message, /^Invalid environment: name: .*; image: .*; cpu: .*$/);
      return true;
    },
  );
});

test("cpuCount: one CPU, any other number of CPUs", () => {
  assert.equal(cpuCount(1), "1 CPU");
  assert.equal(cpuCount(2), "2 CPUs");
  assert.equal(cpuCount(0.5), "0.5 CPUs");
});

test("actionAllowed answers what assertActionAllowed enforces, for every action and state", () => {
  for (const action of ["start", "stop", "rebuild", "delete"] as const) {
    for (const state of environmentStates) {
      let enforced = true;
      try {
        assertActionAllowed(action, state);
      } catch {
        enforced = false;
      }
      assert.equal(actionAllowed(action, state), enforced, `${action} from ${state}`);
    }
  }
});

test("unfinishedBuildKind: a run of build states that began at starting is a start; one that began queued builds", () => {
  const at = "2026-01-01T00:00:00.000Z";
  const timeline = (...states: EnvironmentState[]) => states.map((state) => ({ state, at }));
  const cases: [EnvironmentState[], "build" | "start"][] = [
    [["queued", "pulling", "creating"], "build"],
    [["queued"], "build"],
    [["queued", "pulling", "creating", "starting", "running", "stopping", "stopped", "starting"], "start"],
    [["running", "failed", "starting"], "start"],
    [["running", "queued", "pulling", "creating", "starting"], "build"],
    [["stopped", "starting", "failed", "queued", "pulling"], "build"],
    [[], "build"],
  ];
  for (const [states, kind] of cases) assert.equal(unfinishedBuildKind(timeline(...states)), kind, states.join(" "));
});

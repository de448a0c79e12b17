import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { chmod, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { promisify } from "node:util";
import { demux, dockerOnDemand, parseReport, reportScript, systemdStatusOf } from "./readiness.js";

test("systemd's own words map onto the API's systemd status", () => {
  const cases: [string, string][] = [
    ["running", "running"],
    ["degraded", "degraded"],
    ["starting", "starting"],
    ["initializing", "starting"],
    ["offline", "unavailable"],
    ["", "unknown"],
    ["something-new", "unknown"],
  ];
  for (const [word, status] of cases) assert.equal(systemdStatusOf(word), status);
});

test("the report script's output: state, failed units, Docker enabled, dockerd's unit and socket", () => {
  const report = parseReport(
    "state=degraded\nfailed=foo.service\nfailed=bar.mount\ndocker=enabled\ndockerd=active\ndockersocket=active\n",
  );
  assert.deepEqual(report, {
    state: "degraded",
    failedUnits: ["foo.service", "bar.mount"],
    dockerEnabled: true,
    dockerd: "active",
    dockerSocketActive: true,
  });
  assert.deepEqual(parseReport("state=\n"), {
    state: "unknown",
    failedUnits: [],
    dockerEnabled: false,
    dockerd: "unknown",
    dockerSocketActive: false,
  });
});

test("Docker on demand: systemd listens on docker.socket and dockerd has not started (nor failed)", () => {
  const on = (dockerd: string, socket: string) =>
    dockerOnDemand(parseReport(`state=running\ndocker=enabled\ndockerd=${dockerd}\ndockersocket=${socket}\n`));
  assert.equal(on("inactive", "active"), true);
  assert.equal(on("active", "active"), false, "a running dockerd is pinged, not assumed");
  assert.equal(on("activating", "active"), false);
  assert.equal(on("failed", "active"), false);
  assert.equal(on("inactive", "inactive"), false, "no socket listens: nothing would start dockerd");
  assert.equal(dockerOnDemand(parseReport("state=running\ndockerd=inactive\ndockersocket=active\n")), false);
});

test("the report waits for boot only when asked, and bounds the wait", () => {
  assert.match(reportScript(true, 30), /timeout 30 systemctl is-system-running --wait/);
  assert.doesNotMatch(reportScript(false, 30), /--wait/);
});

test("the engine's multiplexed exec stream becomes plain text", () => {
  const frame = (stream: number, text: string) => {
    const body = Buffer.from(text);
    const header = Buffer.alloc(8);
    header[0] = stream;
    header.writeUInt32BE(body.length, 4);
    return Buffer.concat([header, body]);
  };
  assert.equal(demux(Buffer.concat([frame(1, "state=running\n"), frame(2, "warn\n")])), "state=running\nwarn\n");
});

test("the report script, run by a real shell against a stand-in systemctl: Docker on its socket, dockerd not started", async () => {
  const dir = await mkdtemp(join(tmpdir(), "cvm-report-"));
  try {
    // A block per unit, in the order asked, properties in systemd's own order (Id first), as systemctl show answers.
    const systemctl = [
      "#!/bin/sh",
      'case "$1" in',
      "  is-system-running) echo running ;;",
      '  show) [ "$*" = "show -p Id,ActiveState,UnitFileState docker.service docker.socket" ] &&',
      '    printf "Id=docker.service\\nActiveState=inactive\\nUnitFileState=disabled\\n\\nId=docker.socket\\nActiveState=active\\nUnitFileState=enabled\\n" ;;',
      // Asked while running, it would put a failed unit in the report and the deepEqual below would say so.
      '  list-units) echo "asked-while-running.service loaded failed failed" ;;',
      "esac",
    ].join("\n");
    await writeFile(join(dir, "systemctl"), `${systemctl}\n`);
    await chmod(join(dir, "systemctl"), 0o755);
    const { stdout } = await promisify(execFile)("sh", ["-c", reportScript(false, 5)], {
      env: { PATH: `${dir}:/usr/bin:/bin` },
    });
    const report = parseReport(stdout);
    assert.deepEqual(report, {
      state: "running",
      failedUnits: [],
      dockerEnabled: true,
      dockerd: "inactive",
      dockerSocketActive: true,
    });
    assert.equal(dockerOnDemand(report), true);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

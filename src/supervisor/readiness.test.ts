import assert from "node:assert/strict";
import { test } from "node:test";
import { demux, parseReport, reportScript, systemdStatusOf } from "./readiness.js";

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

test("the report script's output: state, failed units, docker.service enabled", () => {
  const report = parseReport("state=degraded\nfailed=foo.service\nfailed=bar.mount\ndocker=enabled\n");
  assert.deepEqual(report, { state: "degraded", failedUnits: ["foo.service", "bar.mount"], dockerEnabled: true });
  assert.deepEqual(parseReport("state=\n"), { state: "unknown", failedUnits: [], dockerEnabled: false });
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

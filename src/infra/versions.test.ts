import assert from "node:assert/strict";
import { test } from "node:test";
import { atLeast, compareVersions, parseVersion, version } from "./versions.js";

const inTheWild: [string, string | undefined][] = [
  ["5.4.0-1049-gke", "5.4.0"],
  ["6.1.0-13-cloud-amd64", "6.1.0"],
  ["4.19.112+", "4.19.112"],
  ["v1.29.0-eks-a5ec690", "1.29.0"],
  ["1.27.3-gke.100", "1.27.3"],
  ["v1.30.2+k3s1", "1.30.2"],
  ["6.18.44-fc-v657", "6.18.44"],
  ["5.15.0-1057-azure", "5.15.0"],
  ["6.8.0-1015-aws", "6.8.0"],
  ["5.10.210-201.852.amzn2.x86_64", "5.10.210"],
  ["v1.28.5+rke2r1", "1.28.5"],
  ["1.17", "1.17.0"],
  ["v1.31.1", "1.31.1"],
  [" 5.4.0-1049-gke\n", "5.4.0"],
  ["latest", undefined],
  ["", undefined],
  ["gke-1.27", undefined],
  ["v1", undefined],
];

for (const [text, expected] of inTheWild) {
  test(`parses ${JSON.stringify(text)} as ${expected ?? "no version"}`, () => {
    const parsed = parseVersion(text);
    assert.equal(parsed && `${parsed.major}.${parsed.minor}.${parsed.patch}`, expected);
  });
}

const comparisons: [string, string, number][] = [
  ["5.4.0-1049-gke", "5.4", 0],
  ["4.19.112+", "5.4", -1],
  ["5.10.0", "5.4.0", 1],
  ["1.16.15-gke.1", "1.17", -1],
  ["v1.17.0", "1.17", 0],
  ["1.9.0", "1.17.0", -1],
  ["6.1.0-13-cloud-amd64", "5.12", 1],
];

for (const [a, b, sign] of comparisons) {
  test(`${a} compares ${sign < 0 ? "below" : sign > 0 ? "above" : "equal to"} ${b}`, () => {
    assert.equal(Math.sign(compareVersions(version(a), version(b))), sign);
    assert.equal(atLeast(version(a), version(b)), sign >= 0);
  });
}

test("a malformed literal is a programming error", () => {
  assert.throws(() => version("five"), /not a version: five/);
});

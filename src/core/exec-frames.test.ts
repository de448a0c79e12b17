import assert from "node:assert/strict";
import { test } from "node:test";
import { encodeFrame, FrameDecoder } from "./exec-frames.js";

test("frames survive being cut anywhere and arrive in order", () => {
  const sent = [
    encodeFrame({ type: "resize", cols: 120, rows: 40 }),
    encodeFrame({ type: "input", data: new TextEncoder().encode("echo hi\n") }),
    encodeFrame({ type: "input", data: new Uint8Array(0) }),
    encodeFrame({ type: "end" }),
  ];
  const stream = Buffer.concat(sent);
  for (const size of [1, 2, 3, 7, stream.length]) {
    const decoder = new FrameDecoder();
    const frames = [];
    for (let at = 0; at < stream.length; at += size) frames.push(...decoder.push(stream.subarray(at, at + size)));
    assert.deepEqual(
      frames.map((f) => (f.type === "input" ? { type: f.type, text: Buffer.from(f.data).toString() } : f)),
      [
        { type: "resize", cols: 120, rows: 40 },
        { type: "input", text: "echo hi\n" },
        { type: "input", text: "" },
        { type: "end" },
      ],
      `cut every ${size} bytes`,
    );
  }
});

test("bytes that are not frames are refused, not guessed at", () => {
  assert.throws(() => new FrameDecoder().push(new Uint8Array([9, 0, 0, 0, 0])), /not an exec frame/);
});

import assert from "node:assert/strict";
import { test } from "node:test";
import { closeFrame, WebSocketFrames } from "./websocket-ending.js";

const answer = Buffer.from("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n");
const text = (payload: string) => Buffer.concat([Buffer.from([0x81, payload.length]), Buffer.from(payload)]);
const large = Buffer.concat([Buffer.from([0x82, 126, 0x01, 0x00]), Buffer.alloc(256, 7)]);

test("a close frame may go between the app's frames, wherever its bytes were split", () => {
  const stream = Buffer.concat([answer, text("hello"), large, text("bye")]);
  const boundaries = [answer.length, answer.length + 7, answer.length + 7 + 260, stream.length];
  for (let size = 1; size <= 64; size++) {
    const frames = new WebSocketFrames();
    const seen: number[] = [];
    for (let at = 0; at < stream.length; at += size) {
      const chunk = stream.subarray(at, at + size);
      for (let offset = 0; offset < chunk.length; offset++) {
        frames.follow(chunk.subarray(offset, offset + 1));
        if (frames.atBoundary) seen.push(at + offset + 1);
      }
    }
    assert.deepEqual(seen, boundaries, `split every ${size} bytes`);
  }
});

test("ending in the middle of a frame passes the frame's rest, and nothing after it", () => {
  const frames = new WebSocketFrames();
  frames.follow(Buffer.concat([answer, large.subarray(0, 100)]));
  assert.equal(frames.atBoundary, false);
  const rest = Buffer.concat([large.subarray(100), text("next")]);
  assert.equal(frames.follow(rest, true), large.length - 100);
  assert.equal(frames.atBoundary, true);
});

test("an answer that is not 101 is no WebSocket: nothing to close but the connection", () => {
  const frames = new WebSocketFrames();
  frames.follow(Buffer.from("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"));
  assert.equal(frames.speaksWebSocket, false);
  assert.equal(frames.atBoundary, false);
});

test("the close frame carries the code and at most 123 bytes of the reason", () => {
  const frame = closeFrame(1008, "é".repeat(100));
  assert.equal(frame[0], 0x88);
  assert.equal(frame[1], frame.length - 2);
  assert.ok(frame.length - 2 <= 125);
  assert.equal(frame.readUInt16BE(2), 1008);
  assert.equal(frame.subarray(4).toString(), "é".repeat(61));
});

/**
 * How a terminal crosses from the server to a CVM's supervisor on
 * Kubernetes: the exec API's stdin carries frames (input, a resize, end of
 * input) to `cvm supervisor exec --framed`, which gives the CVM's own
 * container the terminal. The Pod itself gets no terminal, so nothing
 * between echoes, edits lines or rewrites output, and a resize needs no
 * second channel. Pure encoding, used by both ends.
 */

export type ExecFrame =
  | { type: "input"; data: Uint8Array }
  | { type: "resize"; cols: number; rows: number }
  | { type: "end" };

const typeCodes = { input: 0, resize: 1, end: 2 } as const;
const headerBytes = 5;

/** One frame: a type byte, the payload's length (u32, big-endian), the payload. */
export function encodeFrame(frame: ExecFrame): Uint8Array {
  const payload =
    frame.type === "input"
      ? frame.data
      : frame.type === "resize"
        ? new Uint8Array([frame.cols >> 8, frame.cols & 0xff, frame.rows >> 8, frame.rows & 0xff])
        : new Uint8Array(0);
  const out = new Uint8Array(headerBytes + payload.length);
  const view = new DataView(out.buffer);
  out[0] = typeCodes[frame.type];
  view.setUint32(1, payload.length);
  out.set(payload, headerBytes);
  return out;
}

/** Reassembles frames from a byte stream cut anywhere; a frame it does not know ends the stream as an error. */
export class FrameDecoder {
  private buffered = new Uint8Array(0);

  push(chunk: Uint8Array): ExecFrame[] {
    const joined = new Uint8Array(this.buffered.length + chunk.length);
    joined.set(this.buffered);
    joined.set(chunk, this.buffered.length);
    const frames: ExecFrame[] = [];
    let at = 0;
    while (joined.length - at >= headerBytes) {
      const length = new DataView(joined.buffer, at + 1, 4).getUint32(0);
      if (joined.length - at - headerBytes < length) break;
      const payload = joined.slice(at + headerBytes, at + headerBytes + length);
      frames.push(decodeOne(joined[at], payload));
      at += headerBytes + length;
    }
    this.buffered = joined.slice(at);
    return frames;
  }
}

function decodeOne(code: number, payload: Uint8Array): ExecFrame {
  if (code === typeCodes.input) return { type: "input", data: payload };
  if (code === typeCodes.resize && payload.length === 4) {
    return { type: "resize", cols: (payload[0] << 8) | payload[1], rows: (payload[2] << 8) | payload[3] };
  }
  if (code === typeCodes.end) return { type: "end" };
  throw new Error(`not an exec frame (type ${code}, ${payload.length} bytes)`);
}

/**
 * Ending a WebSocket that passes through to an app as raw bytes (the port
 * proxy never speaks WebSocket itself) with a close frame its client reads:
 * code 1008 and why, where cutting the TCP connection would only say 1006.
 * A frame may be written only between the app's frames, so the app's side
 * is followed: its HTTP answer (101 or not), then each frame's header and
 * length, nothing of the payloads but their size.
 */

/** RFC 6455 7.4.1: the endpoint ends the connection because a policy forbids it now. */
export const policyViolation = 1008;

/** As much of `reason` as a close frame holds (123 bytes), cut between characters. */
export function closeReason(reason: string): string {
  let text = reason;
  while (Buffer.byteLength(text) > 123) text = text.slice(0, -1);
  return text;
}

/** A close frame from the server's side (unmasked) with `code` and the reason. */
export function closeFrame(code: number, reason: string): Buffer {
  const payload = Buffer.concat([Buffer.from([code >> 8, code & 0xff]), Buffer.from(closeReason(reason))]);
  return Buffer.concat([Buffer.from([0x88, payload.length]), payload]);
}

/** The length of a frame's header once its first two bytes are known. */
function headerLength(first: Buffer): number {
  const length7 = first[1] & 0x7f;
  const extended = length7 === 126 ? 2 : length7 === 127 ? 8 : 0;
  return 2 + extended + (first[1] & 0x80 ? 4 : 0);
}

function payloadLength(header: Buffer): number {
  const length7 = header[1] & 0x7f;
  if (length7 === 126) return header.readUInt16BE(2);
  if (length7 === 127) return Number(header.readBigUInt64BE(2));
  return length7;
}

/** The longest HTTP answer head followed; beyond it the stream is not taken for a WebSocket. */
const maxHeadBytes = 64 * 1024;

/** Where the app's side of a passed-through WebSocket stands: between frames or inside one. */
export class WebSocketFrames {
  private phase: "head" | "frames" | "other" = "head";
  private head = "";
  private header: number[] = [];
  private remaining = 0;

  /** The app answered 101 and is between two frames: a close frame may go to the client now. */
  get atBoundary(): boolean {
    return this.phase === "frames" && this.header.length === 0 && this.remaining === 0;
  }

  /** The app's answer was not a WebSocket's (or not yet): there is nothing to close but the connection. */
  get speaksWebSocket(): boolean {
    return this.phase === "frames";
  }

  /**
   * Follows `chunk` of the app's bytes; with `untilBoundary`, stops at the
   * first boundary between frames. Answers how many bytes it followed: the
   * part of `chunk` that may be passed to the client.
   */
  follow(chunk: Buffer, untilBoundary = false): number {
    let at = 0;
    while (at < chunk.length) {
      if (untilBoundary && this.atBoundary) return at;
      if (this.phase === "other") return chunk.length;
      if (this.phase === "head") {
        const seen = this.head.length;
        this.head += chunk.subarray(at, at + maxHeadBytes).toString("latin1");
        const end = this.head.indexOf("\r\n\r\n");
        if (end < 0) {
          if (this.head.length >= maxHeadBytes) this.phase = "other";
          return chunk.length;
        }
        this.phase = /^HTTP\/1\.[01] 101 /.test(this.head) ? "frames" : "other";
        at += end + 4 - seen;
        this.head = "";
        continue;
      }
      if (this.remaining > 0) {
        const take = Math.min(this.remaining, chunk.length - at);
        this.remaining -= take;
        at += take;
        continue;
      }
      this.header.push(chunk[at]);
      at += 1;
      if (this.header.length >= 2) {
        const header = Buffer.from(this.header);
        if (header.length === headerLength(header)) {
          this.remaining = payloadLength(header);
          this.header = [];
        }
      }
    }
    return at;
  }
}

/**
 * A unix socket inside an environment through the provider's own exec, for
 * a provider whose node cannot enter the environment's mount namespace
 * (Kubernetes: the Pod runs on another node, reached only through the API
 * server). SSH agent forwarding needs one: SSH_AUTH_SOCK inside, whose
 * connections come back to the client's agent.
 *
 * One long-lived exec runs a small relay in Perl (perl-base, in every
 * Debian-based image, as src/providers/exec-dial.ts relies on): it makes a
 * fresh directory (0700) and the socket in it (0600), both owned by the
 * account, says "ok" on stderr (or why not, exit 4), and then carries every
 * connection accepted there over the one exec's stdin and stdout as frames.
 * A frame is a type byte, the connection's id (u32, big-endian), the
 * payload's length (u32) and the payload:
 *
 *   o  open   (relay to server) a connection was accepted inside
 *   d  data   (both ways)
 *   e  end    (both ways) that side will send no more: a half-close
 *   c  close  (both ways) the connection is gone
 *
 * The end of the exec's stdin is the end of the listener: the relay removes
 * the socket and its directory and exits. A relay that dies, or an exec
 * stream that breaks, ends every connection it carried at once.
 *
 * One exec rather than one per connection: a connection inside is accepted
 * by a process inside, and only a process that already runs there can
 * accept it; the exec API starts processes, it does not listen.
 */

import { Duplex } from "node:stream";
import { within } from "../core/deadline.js";
import type { Environment } from "../core/environment.js";
import { CvmError } from "../core/errors.js";
import type { ExecSession, Provider, UnixListener, UnixSocketSpec } from "../core/provider.js";

/** The relay; $ARGV is the path, the uid and the gid. Exit 4: it could not listen (the reason on stderr). */
export const listenScript = String.raw`
eval { require IO::Socket::UNIX; require IO::Select; 1 } or do { print STDERR "no IO::Socket::UNIX in the image\n"; exit 4 };
my ($path, $uid, $gid) = @ARGV;
$SIG{PIPE} = "IGNORE";
umask 077;
my ($dir) = $path =~ m{^(/.*)/[^/]+$} or do { print STDERR "not an absolute socket path: $path\n"; exit 4 };
mkdir($dir, 0700) or do { print STDERR "making $dir: $!\n"; exit 4 };
my $cleaned = 0;
sub cleanup { return if $cleaned++; unlink $path; rmdir $dir }
END { cleanup() }
$SIG{TERM} = $SIG{HUP} = $SIG{INT} = sub { exit 0 };
sub own { my $f = shift; chown($uid, $gid, $f) or ((stat $f)[4] == $uid) or do { print STDERR "owning $f by $uid:$gid: $!\n"; exit 4 } }
own($dir);
my $listener = IO::Socket::UNIX->new(Type => IO::Socket::UNIX::SOCK_STREAM(), Local => $path, Listen => 16)
  or do { print STDERR "listening on $path: $!\n"; exit 4 };
chmod(0600, $path); own($path);
binmode STDIN; binmode STDOUT;
syswrite(STDERR, "ok\n");
my (%conn, %id_of);
my $next = 0;
my $in = "";
my $sel = IO::Select->new(\*STDIN, $listener);
sub out {
  my ($type, $id, $data) = @_;
  $data = "" unless defined $data;
  my $frame = pack("a1 N N", $type, $id, length $data) . $data;
  my $off = 0;
  while ($off < length $frame) { my $w = syswrite(STDOUT, $frame, length($frame) - $off, $off); exit 0 unless defined $w; $off += $w }
}
sub drop { my ($id) = @_; my $c = delete $conn{$id} or return; delete $id_of{"$c"}; $sel->remove($c); close $c }
sub put {
  my ($id, $data) = @_;
  my $c = $conn{$id} or return;
  my $off = 0;
  while ($off < length $data) {
    my $w = syswrite($c, $data, length($data) - $off, $off);
    unless (defined $w) { drop($id); out("c", $id); return }
    $off += $w;
  }
}
while (1) {
  for my $h ($sel->can_read) {
    if ($h == $listener) {
      my $c = $listener->accept or next;
      my $id = ++$next;
      $conn{$id} = $c; $id_of{"$c"} = $id; $sel->add($c);
      out("o", $id);
    } elsif (fileno($h) == 0) {
      my $n = sysread(STDIN, my $buf, 65536);
      exit 0 unless $n;
      $in .= $buf;
      while (length($in) >= 9) {
        my ($type, $id, $len) = unpack("a1 N N", $in);
        last if length($in) < 9 + $len;
        my $data = substr($in, 9, $len);
        substr($in, 0, 9 + $len) = "";
        if ($type eq "d") { put($id, $data) }
        elsif ($type eq "e") { shutdown($conn{$id}, 1) if $conn{$id} }
        elsif ($type eq "c") { drop($id) }
      }
    } else {
      my $id = $id_of{"$h"};
      my $n = sysread($h, my $buf, 65536);
      if ($n) { out("d", $id, $buf) }
      elsif (defined $n) { $sel->remove($h); out("e", $id) }
      else { drop($id); out("c", $id) }
    }
  }
}
`;

export type SocketFrameType = "o" | "d" | "e" | "c";

export interface SocketFrame {
  type: SocketFrameType;
  id: number;
  data: Uint8Array;
}

const headerBytes = 9;
const frameTypes = new Set<string>(["o", "d", "e", "c"]);

export function encodeSocketFrame(type: SocketFrameType, id: number, data: Uint8Array = new Uint8Array(0)): Buffer {
  const frame = Buffer.alloc(headerBytes + data.length);
  frame.write(type, 0, "latin1");
  frame.writeUInt32BE(id, 1);
  frame.writeUInt32BE(data.length, 5);
  frame.set(data, headerBytes);
  return frame;
}

/** Reassembles the relay's frames from its stdout cut anywhere; a type it does not know is an error. */
export class SocketFrameDecoder {
  private buffered = Buffer.alloc(0);

  push(chunk: Uint8Array): SocketFrame[] {
    this.buffered = this.buffered.length === 0 ? Buffer.from(chunk) : Buffer.concat([this.buffered, chunk]);
    const frames: SocketFrame[] = [];
    let at = 0;
    while (this.buffered.length - at >= headerBytes) {
      const type = String.fromCharCode(this.buffered[at]);
      if (!frameTypes.has(type)) throw new Error(`not a socket frame (type byte ${this.buffered[at]})`);
      const length = this.buffered.readUInt32BE(at + 5);
      if (this.buffered.length - at - headerBytes < length) break;
      frames.push({
        type: type as SocketFrameType,
        id: this.buffered.readUInt32BE(at + 1),
        data: this.buffered.subarray(at + headerBytes, at + headerBytes + length),
      });
      at += headerBytes + length;
    }
    this.buffered = this.buffered.subarray(at);
    return frames;
  }
}

const readyTimeoutMs = 15_000;
const closeTimeoutMs = 5_000;

/** A unix socket at `spec.path` inside, each connection to it handed to `onConnection` as a Duplex. */
export async function listenByExec(
  exec: Provider["exec"],
  environment: Environment,
  spec: UnixSocketSpec,
  onConnection: (connection: Duplex) => void,
): Promise<UnixListener> {
  const session = await exec(environment, {
    command: ["perl", "-e", listenScript, spec.path, String(spec.uid), String(spec.gid)],
    tty: false,
  });
  return relayListener(session, spec.path, onConnection);
}

/** Waits for the relay's "ok", then serves its frames; rejects with its reason when it could not listen. */
export async function relayListener(
  session: ExecSession,
  path: string,
  onConnection: (connection: Duplex) => void,
): Promise<UnixListener> {
  const connections = new Map<number, Duplex>();
  const decoder = new SocketFrameDecoder();
  let ready = false;
  let said = "";
  let ended = false;

  // Closed, not errored: a connection not yet bridged has no error listener, and an emitted error would be uncaught.
  const endAll = () => {
    ended = true;
    for (const connection of connections.values()) connection.destroy();
    connections.clear();
  };

  /** Ids the relay said are gone: their Duplex ends without telling it back. */
  const goneInside = new Set<number>();

  const open = (id: number): Duplex => {
    const connection = new Duplex({
      read() {},
      write(chunk: Buffer, _encoding, done) {
        if (!ended) session.write(encodeSocketFrame("d", id, chunk));
        done();
      },
      final(done) {
        if (!ended) session.write(encodeSocketFrame("e", id));
        done();
      },
      destroy(error, done) {
        connections.delete(id);
        if (!goneInside.delete(id) && !ended) session.write(encodeSocketFrame("c", id));
        done(error);
      },
    });
    connections.set(id, connection);
    return connection;
  };

  const onFrame = (frame: SocketFrame) => {
    if (frame.type === "o") {
      onConnection(open(frame.id));
      return;
    }
    const connection = connections.get(frame.id);
    if (!connection) return;
    if (frame.type === "d") connection.push(Buffer.from(frame.data));
    else if (frame.type === "e") connection.push(null);
    else {
      goneInside.add(frame.id);
      connection.destroy();
    }
  };

  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      session.kill();
      reject(new CvmError("UNAVAILABLE", `making ${path} inside: no answer within ${readyTimeoutMs / 1000} s`));
    }, readyTimeoutMs);
    session.onOutput((stream, data) => {
      if (stream === "stdout") {
        if (ended) return;
        try {
          for (const frame of decoder.push(data)) onFrame(frame);
        } catch {
          // Not the relay's frames: nothing more from this stream can be trusted.
          endAll();
          session.kill();
        }
        return;
      }
      if (ready) return;
      said += Buffer.from(data).toString("utf8");
      // Anything the way in says first (a warning of the supervisor's) comes before the relay's own line.
      if (!/(^|\n)ok\n/.test(said)) return;
      ready = true;
      clearTimeout(timer);
      resolve();
    });
    session.exited.then(
      (code) => {
        clearTimeout(timer);
        endAll();
        if (!ready) reject(new CvmError("UNAVAILABLE", `making ${path} inside: ${said.trim() || `exit ${code}`}`));
      },
      (error: Error) => {
        clearTimeout(timer);
        endAll();
        if (!ready) reject(error);
      },
    );
  });

  return {
    async close() {
      // The end of the relay's stdin: it removes the socket and its directory, and exits.
      endAll();
      session.end();
      await within(
        session.exited.catch(() => undefined),
        closeTimeoutMs,
      );
      session.kill();
    },
  };
}

/**
 * A TCP connection to a port on an environment's loopback through the
 * provider's own exec, for a provider whose node cannot enter the
 * environment's network namespace (Kubernetes: the Pod runs on another
 * node). A small relay runs inside in Perl, which every Debian-based image
 * has in perl-base (IO::Socket::INET, IO::Select): it connects, says "ok" on
 * stderr (or why not, exit 3), then relays stdin to the connection and the
 * connection to stdout, passing each direction's end on as a half-close.
 * Slower than cvm-nsbridge's splice (the bytes cross the exec stream), and
 * the same to its users.
 */

import { Duplex } from "node:stream";
import type { Environment } from "../core/environment.js";
import { CvmError } from "../core/errors.js";
import type { ExecSession, Provider } from "../core/provider.js";

/** The relay; $ARGV[0] is the port. Exit 3: nothing listens; 4: no Perl socket modules. */
export const relayScript = String.raw`
eval { require IO::Socket::INET; require IO::Select; 1 } or do { print STDERR "no IO::Socket::INET in the image\n"; exit 4 };
my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1", PeerPort => $ARGV[0], Proto => "tcp")
  or do { print STDERR "connection refused\n"; exit 3 };
$s->setsockopt(6, 1, 1);
binmode STDIN; binmode STDOUT; binmode $s;
syswrite(STDERR, "ok\n");
my $sel = IO::Select->new(\*STDIN, $s);
while (my @ready = $sel->can_read) {
  for my $h (@ready) {
    my $n = sysread($h, my $buf, 65536);
    if ($h == $s) {
      exit 0 unless $n;
      my $off = 0; while ($off < $n) { my $w = syswrite(STDOUT, $buf, $n - $off, $off); exit 0 unless defined $w; $off += $w }
    } elsif (!$n) {
      $sel->remove(\*STDIN); shutdown($s, 1);
    } else {
      my $off = 0; while ($off < $n) { my $w = syswrite($s, $buf, $n - $off, $off); exit 0 unless defined $w; $off += $w }
    }
  }
}
`;

const readyTimeoutMs = 15_000;

/** The exec session as a byte stream, once the relay inside says it is connected. */
export async function dialByExec(exec: Provider["exec"], environment: Environment, port: number): Promise<Duplex> {
  const session = await exec(environment, { command: ["perl", "-e", relayScript, String(port)], tty: false });
  return connected(session, port);
}

/** Waits for the relay's "ok" (or its reason and exit code), then wraps the session. */
export function connected(session: ExecSession, port: number): Promise<Duplex> {
  return new Promise((resolve, reject) => {
    let said = "";
    let ready = false;
    let stream: Duplex | undefined;
    const timer = setTimeout(() => {
      session.kill();
      reject(new CvmError("UNAVAILABLE", `connecting to port ${port}: no answer within ${readyTimeoutMs / 1000} s`));
    }, readyTimeoutMs);
    session.onOutput((kind, data) => {
      if (kind === "stdout") {
        // The exec stream has no backpressure of its own: what arrives is buffered by the Duplex.
        stream?.push(Buffer.from(data));
        return;
      }
      if (ready) return;
      said += Buffer.from(data).toString("utf8");
      if (!said.startsWith("ok\n")) return;
      ready = true;
      clearTimeout(timer);
      stream = new Duplex({
        read() {},
        write(chunk: Buffer, _encoding, done) {
          session.write(chunk);
          done();
        },
        final(done) {
          session.end();
          done();
        },
        destroy(error, done) {
          session.kill();
          done(error);
        },
      });
      resolve(stream);
    });
    session.exited.then(
      (code) => {
        clearTimeout(timer);
        if (stream) {
          stream.push(null);
          return;
        }
        const why = said.trim() || `the relay exited with ${code}`;
        reject(
          code === 3
            ? new CvmError("UNAVAILABLE", `nothing listens on port ${port} inside the environment (${why})`)
            : new CvmError("UNAVAILABLE", `connecting to port ${port} inside: ${why}`),
        );
      },
      (error: Error) => {
        clearTimeout(timer);
        if (stream) stream.destroy(error);
        else reject(error);
      },
    );
  });
}

/**
 * Which TCP ports something listens on inside an environment, read from the
 * kernel's own table (/proc/net/tcp and tcp6 as seen in the environment's
 * network namespace). Parsing only: whoever reads the files is an adapter.
 */

export interface ListeningPort {
  port: number;
  /** The addresses bound, as the kernel has them: 0.0.0.0 and :: mean every address. */
  addresses: string[];
}

/** The kernel's code for a socket in the LISTEN state. */
const listenState = "0A";

/** An address from /proc/net/tcp{,6}: hex, each 32-bit word in the host's (little-endian) order. */
export function decodeProcAddress(hex: string): string {
  const words = hex.match(/.{8}/g) ?? [];
  const bytes = words.flatMap((word) => (word.match(/../g) ?? []).reverse().map((b) => Number.parseInt(b, 16)));
  if (bytes.length === 4) return bytes.join(".");
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i] << 8) | bytes[i + 1]).toString(16));
  // An IPv4 address as IPv6 sees it (::ffff:a.b.c.d) reads as the IPv4 address.
  if (groups.slice(0, 5).every((g) => g === "0") && groups[5] === "ffff") return bytes.slice(12).join(".");
  // The longest run of two or more zero groups shortens to "::" (RFC 5952).
  let best = { start: -1, length: 1 };
  for (let i = 0; i < 8; ) {
    let j = i;
    while (j < 8 && groups[j] === "0") j++;
    if (j - i > best.length) best = { start: i, length: j - i };
    i = j === i ? i + 1 : j;
  }
  if (best.start < 0) return groups.join(":");
  const head = groups.slice(0, best.start).join(":");
  const tail = groups.slice(best.start + best.length).join(":");
  return `${head}::${tail}`;
}

/** The listening ports in the text of /proc/net/tcp and /proc/net/tcp6 (either or both, concatenated). */
export function parseListeningPorts(text: string): ListeningPort[] {
  const byPort = new Map<number, Set<string>>();
  for (const line of text.split("\n")) {
    const fields = line.trim().split(/\s+/);
    if (fields.length < 4 || !/^\d+:$/.test(fields[0]) || fields[3] !== listenState) continue;
    const [address, portHex] = fields[1].split(":");
    if (!address || !portHex) continue;
    const port = Number.parseInt(portHex, 16);
    const addresses = byPort.get(port) ?? new Set<string>();
    addresses.add(decodeProcAddress(address));
    byPort.set(port, addresses);
  }
  return [...byPort.entries()]
    .sort(([a], [b]) => a - b)
    .map(([port, addresses]) => ({ port, addresses: [...addresses].sort() }));
}

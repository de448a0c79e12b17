import assert from "node:assert/strict";
import { test } from "node:test";
import { decodeProcAddress, parseListeningPorts } from "./listening-ports.js";

// Lines as a Linux kernel writes them (x86_64, little-endian).
const tcp = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 41234 1 0000000000000000 100 0 0 10 0
   1: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 41235 1 0000000000000000 100 0 0 10 0
   2: 0100007F:1F90 0100007F:C350 01 00000000:00000000 00:00000000 00000000  1000        0 41236 1 0000000000000000 20 4 30 10 -1
`;
const tcp6 = `  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:0016 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 41237 1 0000000000000000 100 0 0 10 0
   1: 00000000000000000000000001000000:0BB8 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 41238 1 0000000000000000 100 0 0 10 0
   2: 0000000000000000FFFF00000F02000A:1388 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 41239 1 0000000000000000 100 0 0 10 0
`;

test("listening sockets from /proc/net/tcp and tcp6, one entry per port, connections left out", () => {
  assert.deepEqual(parseListeningPorts(tcp + tcp6), [
    { port: 22, addresses: ["0.0.0.0", "::"] },
    { port: 3000, addresses: ["::1"] },
    { port: 5000, addresses: ["10.0.2.15"] },
    { port: 8080, addresses: ["127.0.0.1"] },
  ]);
});

test("addresses decode as people write them", () => {
  assert.equal(decodeProcAddress("0100007F"), "127.0.0.1");
  assert.equal(decodeProcAddress("0F02000A"), "10.0.2.15");
  assert.equal(decodeProcAddress("00000000000000000000000001000000"), "::1");
  assert.equal(decodeProcAddress("000080FE00000000FF005450B6AC29FE"), "fe80::5054:ff:fe29:acb6");
});

test("nothing listening, or no table at all, is an empty list", () => {
  assert.deepEqual(parseListeningPorts(""), []);
  assert.deepEqual(parseListeningPorts(tcp.split("\n").slice(0, 1).join("\n")), []);
});

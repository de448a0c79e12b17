import assert from "node:assert/strict";
import { mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { PortTickets, ticketKeyFile } from "./port-tickets.js";

test("a ticket names its viewer for one environment's port until it expires; nothing else passes", async () => {
  const dir = await mkdtemp(join(tmpdir(), "cvm-tickets-"));
  try {
    const tickets = await PortTickets.open(dir);
    assert.equal((await stat(join(dir, ticketKeyFile))).mode & 0o777, 0o600);
    const now = 1_000_000;
    const ticket = tickets.issue(
      { viewerId: "usr_a", tokenId: "tok_a", environmentId: "env_1", port: 8080 },
      60_000,
      now,
    );
    assert.equal(tickets.verify(ticket, "env_1", 8080, now + 59_000)?.viewerId, "usr_a");
    assert.equal(tickets.verify(ticket, "env_1", 8080, now + 61_000), undefined, "expired");
    assert.equal(tickets.verify(ticket, "env_2", 8080, now), undefined, "another environment");
    assert.equal(tickets.verify(ticket, "env_1", 8081, now), undefined, "another port");
    const [payload, signature] = ticket.split(".");
    const forged = Buffer.from(JSON.stringify({ v: "usr_admin", e: "env_1", p: 8080, x: now + 60_000 })).toString(
      "base64url",
    );
    assert.equal(tickets.verify(`${forged}.${signature}`, "env_1", 8080, now), undefined, "forged claims");
    assert.equal(tickets.verify(`${payload}.x${signature.slice(1)}`, "env_1", 8080, now), undefined);
    assert.equal(tickets.verify(undefined, "env_1", 8080, now), undefined);
    // Another server on the same data dir reads the same key.
    const again = await PortTickets.open(dir);
    assert.equal(again.verify(ticket, "env_1", 8080, now)?.tokenId, "tok_a");
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

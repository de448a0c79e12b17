import assert from "node:assert/strict";
import { test } from "node:test";
import type { Store } from "../core/store.js";
import type { Token, User } from "../core/user.js";
import { user } from "../testing/fixtures.js";
import { type HeldPort, OpenConnections, type PortJudge } from "./open-connections.js";

/** A fake store that knows only sessions: the registry reads nothing else. */
function sessionsStore(sessions: Map<string, { token: Token; user: User }>): Store {
  return {
    tokens: { sessions: async (ids: readonly string[]) => ids.flatMap((id) => sessions.get(id) ?? []) },
  } as unknown as Store;
}

function token(userId: string, revoked = false): Token {
  return {
    id: `tok_${Math.random().toString(36).slice(2)}`,
    userId,
    kind: "session",
    name: "test",
    createdAt: new Date().toISOString(),
    expiresAt: new Date(Date.now() + 3_600_000).toISOString(),
    ...(revoked ? { revokedAt: new Date().toISOString() } : {}),
  };
}

/** A fake judge that condemns the ports listed, and records what it was asked. */
function judge(condemned: Map<number, string>) {
  const asked: { port: HeldPort; viewer?: User }[][] = [];
  const ports: PortJudge = {
    async rejudge(held) {
      asked.push([...held]);
      return held.map((h) => condemned.get(h.port.port));
    },
  };
  return { ports, asked };
}

test("port connections are re-judged with the viewer as stored now; anonymous ones too; each ends once, with the reason", async () => {
  const viewer = user();
  const live = { token: token(viewer.id), user: viewer };
  const store = sessionsStore(new Map([[live.token.id, live]]));
  const connections = new OpenConnections(store, { pollMs: 60_000 });
  const condemned = new Map<number, string>();
  const { ports, asked } = judge(condemned);
  connections.judgePortsWith(ports);
  const ended: string[] = [];
  const hold = (session: typeof live | undefined, port: number, admitted: HeldPort["admitted"]) =>
    connections.hold(session, {
      kind: "port",
      allows: () => true,
      end: (reason) => ended.push(`${port}: ${reason}`),
      port: { environmentId: "env_1", port, admitted },
    });
  hold(undefined, 3000, "share");
  hold(live, 3001, "share");
  hold(live, 8080, "environment");
  await connections.recheck();
  assert.deepEqual(ended, []);
  assert.deepEqual(
    asked[0].map((h) => [h.port.port, h.viewer?.id]),
    [
      [3000, undefined],
      [3001, viewer.id],
      [8080, viewer.id],
    ],
  );

  condemned.set(3000, "The owner made port 3000 of web private");
  condemned.set(3001, "The owner made port 3001 of web private");
  await connections.recheck();
  await connections.recheck();
  assert.deepEqual(ended, [
    "3000: The owner made port 3000 of web private",
    "3001: The owner made port 3001 of web private",
  ]);
  assert.equal(connections.size, 1);
  connections.close();
});

test("a connection whose session ended is ended for that, before any port judge is asked", async () => {
  const viewer = user();
  const revoked = { token: token(viewer.id, true), user: viewer };
  const connections = new OpenConnections(sessionsStore(new Map([[revoked.token.id, revoked]])), { pollMs: 60_000 });
  const { ports, asked } = judge(new Map([[3000, "never said"]]));
  connections.judgePortsWith(ports);
  const ended: string[] = [];
  connections.hold(revoked, {
    kind: "port",
    allows: () => true,
    end: (reason) => ended.push(reason),
    port: { environmentId: "env_1", port: 3000, admitted: "share" },
  });
  await connections.recheck();
  assert.equal(ended.length, 1);
  assert.doesNotMatch(ended[0], /never said/);
  assert.deepEqual(asked, []);
});

test("only a port connection may be held without a session", () => {
  const connections = new OpenConnections(sessionsStore(new Map()), { pollMs: 60_000 });
  assert.throws(
    () => connections.hold(undefined, { kind: "terminal", allows: () => true, end: () => undefined }),
    /held with its session/,
  );
});

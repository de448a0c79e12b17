import assert from "node:assert/strict";
import { test } from "node:test";
import { ownerHandle, parsePortHost, portAccess, portHostLabel, portProblem, portShareEnded } from "./ports.js";

test("who may open a port: owner always; others as shared; public only where the site allows it", () => {
  const owner = { id: "usr_owner" };
  const other = { id: "usr_other" };
  const cases: [Parameters<typeof portAccess>[0], string][] = [
    [{ viewer: owner, ownerId: owner.id, share: "private", publicAllowed: true }, "owner"],
    [{ viewer: other, ownerId: owner.id, share: "private", publicAllowed: true }, "not-found"],
    [{ viewer: undefined, ownerId: owner.id, share: "private", publicAllowed: true }, "sign-in"],
    [{ viewer: other, ownerId: owner.id, share: "authenticated", publicAllowed: true }, "shared"],
    [{ viewer: undefined, ownerId: owner.id, share: "authenticated", publicAllowed: true }, "sign-in"],
    [{ viewer: undefined, ownerId: owner.id, share: "public", publicAllowed: true }, "shared"],
    [{ viewer: other, ownerId: owner.id, share: "public", publicAllowed: true }, "shared"],
    // The admin forbade public sharing after the owner shared: signed-in users only.
    [{ viewer: undefined, ownerId: owner.id, share: "public", publicAllowed: false }, "sign-in"],
    [{ viewer: other, ownerId: owner.id, share: "public", publicAllowed: false }, "shared"],
  ];
  for (const [input, expected] of cases) assert.equal(portAccess(input), expected, JSON.stringify(input));
});

test("a connection a share let in ends when the share as it is now no longer lets its viewer in, saying why", () => {
  const owner = { id: "usr_owner" };
  const other = { id: "usr_other" };
  const at = { ownerId: owner.id, port: 3000, name: "web" };
  const cases: [Omit<Parameters<typeof portShareEnded>[0], keyof typeof at>, string | undefined][] = [
    [{ viewer: undefined, share: "public", publicAllowed: true }, undefined],
    [{ viewer: other, share: "authenticated", publicAllowed: true }, undefined],
    [{ viewer: other, share: "public", publicAllowed: false }, undefined],
    [{ viewer: owner, share: "private", publicAllowed: false }, undefined],
    [{ viewer: undefined, share: "private", publicAllowed: true }, "The owner made port 3000 of web private"],
    [{ viewer: other, share: "private", publicAllowed: true }, "The owner made port 3000 of web private"],
    [
      { viewer: undefined, share: "authenticated", publicAllowed: true },
      "Port 3000 of web is now shared with signed-in users only",
    ],
    [
      { viewer: undefined, share: "public", publicAllowed: false },
      "Public sharing of ports was turned off by the site admins",
    ],
  ];
  for (const [input, expected] of cases)
    assert.equal(portShareEnded({ ...at, ...input }), expected, JSON.stringify(input));
});

test("owner handles are host-name letters from the email's local part", () => {
  assert.equal(ownerHandle("Ada.Lovelace@example.com"), "ada-lovelace");
  assert.equal(ownerHandle("bob+cvm@example.com"), "bob-cvm");
  assert.equal(ownerHandle("__@example.com"), "user");
});

test("a port's host is PORT--NAME--owner under the wildcard host, and nothing else is", () => {
  assert.equal(portHostLabel(8080, "web", "ada"), "8080--web--ada");
  assert.deepEqual(parsePortHost("8080--web--ada.cvm.example.com", "cvm.example.com"), {
    port: 8080,
    name: "web",
    handle: "ada",
  });
  assert.deepEqual(parsePortHost("3000--api-2--bob-x.Apps.Example.com:443", "*.apps.example.com"), {
    port: 3000,
    name: "api-2",
    handle: "bob-x",
  });
  for (const host of [
    "cvm.example.com",
    "8080--web--ada.other.com",
    "web--ada.cvm.example.com",
    "99999--web--ada.cvm.example.com",
    "8080--web--ada.x.cvm.example.com",
    "8080---web--ada.cvm.example.com",
  ]) {
    assert.equal(parsePortHost(host, "cvm.example.com"), undefined, host);
  }
  assert.equal(parsePortHost("8080--web--ada.cvm.example.com", ""), undefined);
});

test("ports are 1 to 65535", () => {
  assert.equal(portProblem(22), undefined);
  for (const bad of [0, 65536, 1.5, "80", -1]) assert.ok(portProblem(bad), String(bad));
});

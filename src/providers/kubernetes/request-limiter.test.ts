import assert from "node:assert/strict";
import { test } from "node:test";
import { ApiException } from "@kubernetes/client-node";
import { isBrokenConnection } from "../../kubernetes/index.js";
import { RequestLimiter } from "./request-limiter.js";

const premature = () =>
  Object.assign(new Error("Invalid response body while trying to fetch https://10.0.0.1/api/v1/x: Premature close"), {
    code: "ERR_STREAM_PREMATURE_CLOSE",
  });

test("a broken connection is told apart from the API server's answer", () => {
  assert.equal(isBrokenConnection(premature()), true);
  assert.equal(isBrokenConnection(Object.assign(new Error("read"), { code: "ECONNRESET" })), true);
  assert.equal(isBrokenConnection(new Error("socket hang up")), true);
  assert.equal(isBrokenConnection(new ApiException(404, "not found", "{}", {})), false);
  assert.equal(isBrokenConnection(new Error("the Pod is pending")), false);
});

test("a request that may be repeated is tried again when its connection broke, on a fresh connection; a create is not", async () => {
  let dropped = 0;
  const limiter = new RequestLimiter(32, async () => {
    dropped++;
  });
  let deletes = 0;
  const result = await limiter.run(
    async () => {
      deletes++;
      if (deletes === 1) throw premature();
      return "deleted";
    },
    false,
    true,
  );
  assert.equal(result, "deleted");
  assert.equal(deletes, 2);
  assert.equal(dropped, 1, "the idle connections are dropped before the retry");

  let creates = 0;
  await assert.rejects(
    limiter.run(async () => {
      creates++;
      throw premature();
    }),
    /Premature close/,
  );
  assert.equal(creates, 1, "a create that may have reached the server is not sent twice");
});

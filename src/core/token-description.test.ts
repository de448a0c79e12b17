import assert from "node:assert/strict";
import { test } from "node:test";
import { describeToken } from "./token-description.js";

test("describeToken tells a CLI login, each browser, an API token and other programs apart", () => {
  const session = (userAgent?: string) => describeToken({ kind: "session", name: "session", userAgent });
  const cases: [string, string][] = [
    [session("cvm-cli/0.1.0 node/20.19.0 linux"), "CLI login"],
    [
      session(
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/131.0.0.0 Safari/537.36",
      ),
      "browser: Chrome on Linux",
    ],
    [
      session(
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
      ),
      "browser: Edge on Windows",
    ],
    [
      session("Mozilla/5.0 (Macintosh; Intel Mac OS X 14.5; rv:128.0) Gecko/20100101 Firefox/128.0"),
      "browser: Firefox on macOS",
    ],
    [
      session(
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
      ),
      "browser: Safari on iOS",
    ],
    [session("curl/8.5.0"), "session: curl/8.5.0"],
    [session(undefined), "session"],
    [describeToken({ kind: "api", name: "ci", userAgent: "cvm-cli/0.1.0" }), 'API token "ci"'],
  ];
  for (const [got, want] of cases) assert.equal(got, want);
});

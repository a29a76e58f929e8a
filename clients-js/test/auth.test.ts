// Tokens against a real gateway configured for HS256 JWTs (docs/auth.md): a token function
// asked before each connection and again before expiry (AUTH), a refused token, a refused
// refresh, a static token that expires.

import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { after, before, test } from "node:test";

import { Client, Code, type ConnectionState } from "@rpcgen/client";
import { nodeTransport } from "@rpcgen/client/node";

import { eventually, rejectsWith } from "./support/assertions.js";
import { Gateway } from "./support/gateway.js";
import { replySum, requestSum, SUM } from "./support/messages.js";

const SECRET = "a test secret of at least thirty-two bytes";

const TOML = `
[auth]
# No clock skew allowed: a token's lifetime is exactly what the test says.
leeway = "0s"

[[auth.keys]]
algorithm = "HS256"
secret = "${SECRET}"

[auth.roles.user]
call = [">"]
subscribe = [">"]
publish = [">"]
`;

const base64url = (data: string | Buffer) => Buffer.from(data).toString("base64url");

/** An HS256 JWT for `sub`, valid for `seconds` (whole seconds, as `exp` is). */
function jwt(sub: string, seconds: number, secret = SECRET): string {
  const header = base64url(JSON.stringify({ alg: "HS256", typ: "JWT" }));
  const exp = Math.floor(Date.now() / 1000) + seconds;
  const claims = base64url(JSON.stringify({ sub, exp, roles: ["user"] }));
  const signature = createHmac("sha256", secret).update(`${header}.${claims}`).digest();
  return `${header}.${claims}.${base64url(signature)}`;
}

let gateway: Gateway;

before(async () => {
  gateway = await Gateway.start({ toml: TOML });
});

after(async () => {
  await gateway?.kill();
});

test("a token function is asked for each connection and again before the token expires", async () => {
  let asked = 0;
  const states: ConnectionState[] = [];
  const client = await Client.connect({
    endpoints: [gateway.tcpUrl],
    transport: nodeTransport,
    token: async () => {
      asked += 1;
      return jwt("alice", 3);
    },
    onStateChange: (state) => states.push(state),
  });
  try {
    assert.equal(asked, 1, "asked for HELLO");
    // The refresh comes at 75-85 % of the ~2-3 s left; the first token has then expired, so
    // calls still going through on the same connection prove the AUTH was accepted.
    await eventually("refreshed twice", () => asked >= 3, 8000);
    assert.equal(replySum(await client.call(SUM, requestSum(1n, 2n))), 3n);
    assert.deepEqual(
      states.map((s) => s.status),
      ["connected"],
      "one connection throughout: no GOAWAY token_expired, no reconnection",
    );
    const metrics = await gateway.metrics();
    assert.doesNotMatch(metrics, /gateway_goaway_total\{reason="token_expired"\} [1-9]/);
  } finally {
    await client.close();
  }
});

test("a refused token fails Client.connect with unauthenticated and the gateway's reason", async () => {
  const error = await rejectsWith(
    Client.connect({ endpoints: [gateway.tcpUrl], transport: nodeTransport, token: jwt("mallory", 60, "not the secret, not the secret!!") }),
    Code.UNAUTHENTICATED,
  );
  assert.equal(error.retryable, false);
  assert.match(error.message, /closed the connection for good \(unauthenticated: .*signature does not verify/);
  const anonymous = await rejectsWith(Client.connect({ endpoints: [gateway.tcpUrl], transport: nodeTransport }), Code.UNAUTHENTICATED);
  assert.match(anonymous.message, /a token is required/);
});

test("a client refused for good fails every waiting and later call, and says so in its state", async () => {
  const client = new Client({ endpoints: [gateway.tcpUrl], transport: nodeTransport, token: "not.a.jwt" });
  const waiting = rejectsWith(client.call(SUM, requestSum(1n, 1n)), Code.UNAUTHENTICATED);
  assert.match((await waiting).message, /malformed token/);
  assert.equal(client.state.status, "closed");
  assert.equal((client.state as { error?: { code: number } }).error?.code, Code.UNAUTHENTICATED);
  await rejectsWith(client.call(SUM, requestSum(1n, 1n)), Code.UNAUTHENTICATED);
  await client.close();
});

test("a refresh the gateway refuses fails, and the connection keeps its credentials", async () => {
  const client = await Client.connect({ endpoints: [gateway.tcpUrl], transport: nodeTransport, token: jwt("bob", 60) });
  try {
    const refused = await rejectsWith(client.refreshToken(jwt("carol", 60)), Code.UNAUTHENTICATED);
    assert.match(refused.message, /subject/);
    await client.refreshToken(jwt("bob", 120));
    assert.equal(replySum(await client.call(SUM, requestSum(2n, 2n))), 4n);
    assert.equal(client.state.status, "connected");
  } finally {
    await client.close();
  }
});

test("a static token that expires: the gateway says token_expired, and the client cannot come back with it", async () => {
  const states: ConnectionState[] = [];
  const client = await Client.connect({
    endpoints: [gateway.tcpUrl],
    transport: nodeTransport,
    token: jwt("dave", 2),
    backoff: { initialMs: 20, maxMs: 100 },
    onStateChange: (state) => states.push(state),
  });
  await eventually("the client stops", () => client.state.status === "closed", 8000);
  assert.ok(
    states.some((s) => s.status === "connecting" && /went away \(token_expired/.test(s.lastError ?? "")),
    JSON.stringify(states),
  );
  const final = client.state as { error?: { code: number; message: string } };
  assert.equal(final.error?.code, Code.UNAUTHENTICATED);
  assert.match(final.error?.message ?? "", /expired/);
  await client.close();
});

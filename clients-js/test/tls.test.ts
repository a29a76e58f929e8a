// TLS: the client over `tls://` and `wss://` against a real gateway with `--tls-cert` and
// `--tls-key`, the certificates made for the test by `target/debug/test-pki` (a CA, another CA,
// a certificate for localhost and 127.0.0.1, an expired one). A wrong CA and an expired
// certificate are refused, and the error says so.

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";

import { Client, Code } from "@rpcgen/client";
import { nodeTransportWith } from "@rpcgen/client/node";

import { rejectsWith } from "./support/assertions.js";
import { Gateway, ROOT } from "./support/gateway.js";
import { replySum, requestSum, SUM } from "./support/messages.js";

const PKI_BIN = process.env.TEST_PKI_BIN ?? join(ROOT, "target/debug/test-pki");
const dir = mkdtempSync(join(tmpdir(), "rpcgen-tls-test-"));
execFileSync(PKI_BIN, [dir, "localhost", "127.0.0.1"]);
const ca = readFileSync(join(dir, "ca.pem"));
const otherCa = readFileSync(join(dir, "other-ca.pem"));

let gateway: Gateway;
let expired: Gateway;

before(async () => {
  const tls = (name: string) => ["--tls-cert", join(dir, `${name}.pem`), "--tls-key", join(dir, `${name}-key.pem`)];
  gateway = await Gateway.start({ args: ["--anonymous-roles", "all", ...tls("gateway")] });
  expired = await Gateway.start({ args: ["--anonymous-roles", "all", ...tls("expired")] });
});

after(async () => {
  await gateway?.kill();
  await expired?.kill();
});

const port = (addr: string) => addr.slice(addr.lastIndexOf(":") + 1);

for (const [name, url] of [
  ["tls://", () => `tls://localhost:${port(gateway.addr)}`],
  ["tls:// by IP address", () => `tls://127.0.0.1:${port(gateway.addr)}`],
  ["wss://", () => `wss://localhost:${port(gateway.wsAddr)}`],
] as const) {
  test(`calls over ${name} with a CA of the test's own`, async () => {
    const client = await Client.connect({ endpoints: [url()], transport: nodeTransportWith({ ca }) });
    try {
      assert.equal(replySum(await client.call(SUM, requestSum(40n, 2n))), 42n);
      const sums = await Promise.all(Array.from({ length: 100 }, (_, i) => client.call(SUM, requestSum(BigInt(i), 1n))));
      assert.deepEqual(sums.map(replySum), Array.from({ length: 100 }, (_, i) => BigInt(i) + 1n));
    } finally {
      await client.close();
    }
  });
}

test("a gateway whose certificate another CA signed is refused, saying why", async () => {
  for (const url of [`tls://localhost:${port(gateway.addr)}`, `wss://localhost:${port(gateway.wsAddr)}`]) {
    const connecting = Client.connect({ endpoints: [url], transport: nodeTransportWith({ ca: otherCa }), connectTimeoutMs: 5000 });
    const error = await rejectsWith(connecting, Code.UNAVAILABLE);
    assert.match(error.message, /certificate/, error.message);
  }
});

test("an expired certificate is refused, saying it expired", async () => {
  const connecting = Client.connect({
    endpoints: [`tls://localhost:${port(expired.addr)}`],
    transport: nodeTransportWith({ ca }),
    connectTimeoutMs: 5000,
  });
  const error = await rejectsWith(connecting, Code.UNAVAILABLE);
  assert.match(error.message, /TLS: certificate has expired/, error.message);
});

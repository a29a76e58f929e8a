/**
 * `@rpcgen/client/roughtime` on another implementation's exchanges: the captures the
 * `roughenough-protocol` 2.2.0 crate publishes (`testdata/`, read from cargo's registry, where
 * `cargo test` unpacks it), one of version 1 and one of the drafts' version, each with its
 * server's public key; and every way a changed byte must make it fail.
 */

import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";

import { RoughtimeError, verifyRoughtime } from "@rpcgen/client/roughtime";

function testdata(): string {
  const registry = join(process.env["CARGO_HOME"] ?? join(homedir(), ".cargo"), "registry", "src");
  for (const index of readdirSync(registry)) {
    const dir = join(registry, index, "roughenough-protocol-2.2.0", "testdata");
    if (existsSync(dir)) return dir;
  }
  throw new Error(`roughenough-protocol 2.2.0 is not unpacked under ${registry} (run cargo test -p roughtime once)`);
}

const read = (name: string) => new Uint8Array(readFileSync(join(testdata(), name)));
const key = (b64: string) => new Uint8Array(Buffer.from(b64, "base64"));

const V1 = {
  request: () => read("rfc10049-request.104172a3"),
  response: () => read("rfc10049-response.104172a3"),
  key: key("GX9rI+FshTLGq8g4+s1ep4m+DHaykgM0A5v6iz02jWE="),
};

test("a version 1 exchange verifies", async () => {
  const time = await verifyRoughtime(V1.request(), V1.response(), V1.key);
  assert.equal(time.version, 1);
  assert.equal(time.midp, 1_791_158_400n);
  assert.ok(time.radius > 0);
});

test("a draft exchange verifies with the drafts' context strings", async () => {
  const time = await verifyRoughtime(
    read("rfc-request.071039e5"),
    read("rfc-response.071039e5"),
    key("AW5uAoTSTDfG5NfY1bTh08GUnOqlRb+HVhbJ3ODJvsE="),
  );
  assert.equal(time.version, 0x8000000c);
  assert.equal(time.midp, 0x682f8402n);
  assert.equal(time.radius, 5);
});

async function fails(check: string, request: Uint8Array, response: Uint8Array, publicKey = V1.key, nonce?: Uint8Array) {
  await assert.rejects(verifyRoughtime(request, response, publicKey, nonce), (e: unknown) => {
    assert.ok(e instanceof RoughtimeError, String(e));
    assert.equal(e.check, check, e.message);
    return true;
  });
}

test("another key, another request, another nonce or a changed byte fail", async () => {
  const wrongKey = V1.key.slice();
  wrongKey[0]! ^= 1;
  await fails("delegation", V1.request(), V1.response(), wrongKey);

  const changedRequest = V1.request();
  changedRequest[changedRequest.length - 1]! ^= 1;
  await fails("tree", changedRequest, V1.response());

  await fails("nonce", V1.request(), V1.response(), V1.key, new Uint8Array(32));

  // The last byte of the response is INDX's: a wrong leaf position.
  const wrongIndex = V1.response();
  wrongIndex[wrongIndex.length - 4]! ^= 1;
  await fails("tree", V1.request(), wrongIndex);

  // A byte of the SREP's signature, just after the good one was verified (and its signatures
  // remembered as valid).
  await verifyRoughtime(V1.request(), V1.response(), V1.key);
  const badSignature = V1.response();
  badSignature[0x44]! ^= 1;
  await fails("signature", V1.request(), badSignature);

  const truncated = V1.response().subarray(0, 100);
  await fails("format", V1.request(), truncated);
});

/**
 * Byte-array helpers the verifiers share (`roughtime.ts`, `mailbox.ts`).
 */

/** Whether two byte arrays hold the same bytes. */
export function equal(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** The bytes of `parts`, one after another, in a new array of its own buffer. */
export function concat(...parts: Uint8Array[]): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

/** What is used of Node's `node:crypto`. */
interface NodeCrypto {
  createHash(algorithm: "sha256" | "sha512"): { update(data: Uint8Array): void; digest(): Uint8Array };
}

/**
 * Node's own hashes, where the code runs in Node (20.16 and later): Web Crypto's digest is a
 * promise, which Node serves on a worker thread, a round trip per hash (a Merkle path is many).
 * Browsers use Web Crypto.
 */
const nodeCrypto = (
  globalThis as { process?: { getBuiltinModule?: (name: string) => unknown } }
).process?.getBuiltinModule?.("node:crypto") as NodeCrypto | undefined;

/** The SHA-256 or SHA-512 digest of `parts`, one after another. */
export async function digest(algorithm: "SHA-256" | "SHA-512", ...parts: Uint8Array[]): Promise<Uint8Array> {
  if (nodeCrypto !== undefined) {
    const hasher = nodeCrypto.createHash(algorithm === "SHA-256" ? "sha256" : "sha512");
    for (const part of parts) hasher.update(part);
    return new Uint8Array(hasher.digest());
  }
  return new Uint8Array(await globalThis.crypto.subtle.digest(algorithm, concat(...parts)));
}

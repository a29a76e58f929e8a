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

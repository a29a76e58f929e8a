import assert from "node:assert/strict";

import { RpcError, type Subscription, type TopicEvent } from "@rpcgen/client";

/** Asserts that `promise` rejects with an RpcError of `code`, and returns it. */
export async function rejectsWith(promise: Promise<unknown>, code: number): Promise<RpcError> {
  try {
    await promise;
  } catch (e) {
    assert.ok(e instanceof RpcError, `an RpcError, not ${String(e)}`);
    assert.equal(e.code, code, e.message);
    return e;
  }
  assert.fail(`expected a rejection with code ${code}`);
}

/** The next event of `sub`, or a failure after `ms`. */
export async function nextEvent<T>(sub: Subscription<T>, ms = 5000): Promise<TopicEvent<T>> {
  const iterator = sub[Symbol.asyncIterator]();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no event within ${ms} ms`)), ms);
  });
  try {
    const result = await Promise.race([iterator.next(), timeout]);
    assert.ok(!result.done, "the subscription ended");
    return result.value;
  } finally {
    clearTimeout(timer);
  }
}

/** Resolves when `check()` holds, polling every 10 ms; fails after `ms`. */
export async function eventually(what: string, check: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> {
  const until = performance.now() + ms;
  while (!(await check())) {
    if (performance.now() > until) assert.fail(`${what}: not within ${ms} ms`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** `promise`, or a failure after `ms`. */
export function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms);
    }),
  ]);
}

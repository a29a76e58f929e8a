// Deadlines on one timer (src/deadlines.ts): on a fake clock, entries expire at their deadline,
// never before, and at most a tick and 2 ms late; removed ones never expire; the timer holds the program
// only while something is scheduled. Then through a client against a scripted gateway that never
// answers: many calls in flight, each failing at its own deadline with a CANCEL, aborts, and a
// subscribe that gets no confirmation.

import assert from "node:assert/strict";
import { afterEach, test } from "node:test";

import { Client, Code } from "@rpcgen/client";
import { nodeTransport } from "@rpcgen/client/node";

// Internal: not in the package's exports, so imported by its path in the build.
import { wireTimeout } from "../dist/call.js";
import { type Clock, Deadlines, TICK_MS, Timed } from "../dist/deadlines.js";

import { rejectsWith } from "./support/assertions.js";
import { ScriptedGateway } from "./support/peer.js";

/** A clock that moves only when told, with timers that may fire early, as Node's may. */
class FakeClock implements Clock {
  time = 0;
  timers: { at: number; callback: () => void; held: boolean }[] = [];
  /** How early (ms) timers fire. */
  early = 0;

  now(): number {
    return this.time;
  }
  setTimer(callback: () => void, ms: number): unknown {
    const timer = { at: this.time + ms, callback, held: true };
    this.timers.push(timer);
    return timer;
  }
  clearTimer(handle: unknown): void {
    this.timers = this.timers.filter((t) => t !== handle);
  }
  holdTimer(handle: unknown, hold: boolean): void {
    (handle as { held: boolean }).held = hold;
  }
  /** Whether a timer would keep a program running. */
  get holding(): boolean {
    return this.timers.some((t) => t.held);
  }
  /** Moves to `to`, firing each timer due on the way at its (early) moment. */
  advance(to: number): void {
    for (;;) {
      const next = this.timers.reduce<(typeof this.timers)[number] | undefined>((a, t) => (!a || t.at < a.at ? t : a), undefined);
      if (!next || next.at - this.early > to) break;
      this.timers = this.timers.filter((t) => t !== next);
      this.time = Math.max(this.time, next.at - this.early);
      next.callback();
    }
    this.time = to;
  }
}

class Entry extends Timed {
  expiredAt: number | undefined;
  constructor(
    private readonly clock: FakeClock,
    deadline: number,
    private readonly onExpire: (entry: Entry) => void = () => {},
  ) {
    super();
    this.deadline = deadline;
  }
  expire(): void {
    assert.equal(this.expiredAt, undefined, "expired twice");
    this.expiredAt = this.clock.now();
    this.onExpire(this);
  }
}

test("an entry expires at its deadline, not before, and at most a tick and 2 ms late", () => {
  for (const early of [0, 1]) {
    const clock = new FakeClock();
    clock.early = early;
    const wheel = new Deadlines(clock);
    clock.time = 1.3;
    const deadlines = [2, 5.5, 8, 8.01, 13, 100, 4000.7];
    const entries = deadlines.map((d) => new Entry(clock, d));
    for (const e of entries) wheel.add(e);
    for (let t = 1.3; t < 4100; t += 0.25) clock.advance(t);
    for (const e of entries) {
      assert.ok(e.expiredAt !== undefined, `deadline ${e.deadline} never expired`);
      assert.ok(e.expiredAt >= e.deadline, `deadline ${e.deadline} expired early, at ${e.expiredAt}`);
      // The tick, then the timer's rounding up and its margin of 1 ms, then the 0.25 ms steps.
      assert.ok(e.expiredAt <= e.deadline + TICK_MS + 2.25, `deadline ${e.deadline} expired late, at ${e.expiredAt}`);
    }
    assert.equal(wheel.size, 0);
    assert.ok(!clock.holding, "nothing scheduled, nothing holds the program");
  }
});

test("removed entries never expire; an empty wheel does not hold the program", () => {
  const clock = new FakeClock();
  const wheel = new Deadlines(clock);
  const a = new Entry(clock, 50);
  const b = new Entry(clock, 50);
  const c = new Entry(clock, 60);
  wheel.add(a);
  wheel.add(b);
  wheel.add(c);
  assert.ok(clock.holding);
  wheel.remove(b);
  wheel.remove(b);
  assert.equal(wheel.size, 2);
  a.unschedule();
  c.unschedule();
  assert.equal(wheel.size, 0);
  assert.ok(!clock.holding, "the timer may stay, but does not hold the program");
  // Scheduling again holds it again, with the timer that is there or a new one.
  const d = new Entry(clock, 70);
  wheel.add(d);
  assert.ok(clock.holding);
  clock.advance(200);
  assert.deepEqual([a.expiredAt, b.expiredAt, c.expiredAt], [undefined, undefined, undefined]);
  assert.ok(d.expiredAt !== undefined && d.expiredAt >= 70);
  assert.ok(!clock.holding);
});

test("a shorter deadline added later re-arms the timer; one timer serves thousands of entries", () => {
  const clock = new FakeClock();
  const wheel = new Deadlines(clock);
  const long = new Entry(clock, 10_000);
  wheel.add(long);
  const short = new Entry(clock, 30);
  wheel.add(short);
  assert.equal(clock.timers.length, 1, "one timer");
  clock.advance(40);
  assert.ok(short.expiredAt !== undefined && short.expiredAt >= 30 && short.expiredAt <= 30 + TICK_MS + 2);
  assert.equal(long.expiredAt, undefined);

  // 5,000 entries with random deadlines, a third of them removed before they expire.
  let seed = 7;
  const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  const many = Array.from({ length: 5000 }, () => new Entry(clock, 40 + random() * 2000));
  for (const e of many) wheel.add(e);
  assert.ok(clock.timers.length <= 1, "still one timer");
  const removed = many.filter((_, i) => i % 3 === 0);
  for (const e of removed) wheel.remove(e);
  assert.equal(wheel.size, 1 + many.length - removed.length);
  for (let t = 40; t <= 12_000; t += 3) clock.advance(t);
  for (const e of many) {
    if (removed.includes(e)) assert.equal(e.expiredAt, undefined);
    else assert.ok(e.expiredAt !== undefined && e.expiredAt >= e.deadline && e.expiredAt <= e.deadline + TICK_MS + 2 + 3);
  }
  assert.ok(long.expiredAt !== undefined && long.expiredAt >= 10_000);
});

test("an expiring entry may remove others due with it and schedule new ones", () => {
  const clock = new FakeClock();
  const wheel = new Deadlines(clock);
  const later = new Entry(clock, 9);
  const sibling = new Entry(clock, 9);
  const next = new Entry(clock, 25);
  const first = new Entry(clock, 9, () => {
    // A connection closing: every other request settles at once.
    wheel.remove(sibling);
    wheel.remove(later);
    wheel.add(next);
  });
  wheel.add(later);
  wheel.add(sibling);
  wheel.add(first);
  clock.advance(100);
  // The three were due together; the two removed while the first expired do not expire.
  assert.ok(first.expiredAt !== undefined);
  assert.deepEqual([sibling.expiredAt, later.expiredAt], [undefined, undefined]);
  assert.ok(next.expiredAt !== undefined && next.expiredAt >= 25);
  assert.equal(wheel.size, 0);
});

// Found when a REQUEST sent at once carried timeout_ms 1001 for a call of 1000 ms (the WebSocket
// test "frames travel one per binary message", once in a few hundred runs): the deadline is
// `now + 1000`, and `(now + 1000) - now` can be 1000.0000000000146, which rounds up to 1001.
test("a request sent at once carries its timeout, not a ms more from rounding", () => {
  const now = 130124.03002244465;
  assert.ok(now + 1000 - now > 1000, "the rounding this test is about");
  assert.equal(wireTimeout(now + 1000, now, 1000), 1000);
  assert.equal(wireTimeout(now + 0.4, now, 0.4), 1, "at least 1 ms");
  assert.equal(wireTimeout(now + 1000, now + 250.5, 1000), 750, "the time left, rounded up");
  assert.equal(wireTimeout(now + 1000, now + 2000, 1000), 1, "past the deadline: still 1 (0 means none)");
  assert.equal(wireTimeout(Infinity, now, Infinity), 0, "no deadline");
});

// Found while writing the wheel: a timeout may be up to u32::MAX ms (49.7 days), but a timer
// of more than 2^31 - 1 ms fires at once (Node warns and uses 1 ms), so a call of 30 days
// failed with deadline_exceeded after a millisecond (the timer per call had the same flaw).
test("a deadline beyond a timer's longest delay waits in steps", () => {
  const clock = new FakeClock();
  const wheel = new Deadlines(clock);
  const month = 30 * 24 * 3600 * 1000;
  const far = new Entry(clock, month);
  wheel.add(far);
  assert.ok(clock.timers.every((t) => t.at <= 2 ** 31 - 1), "no timer longer than 2^31 - 1 ms");
  clock.advance(2 ** 31);
  assert.equal(far.expiredAt, undefined, "not after the first step");
  assert.ok(clock.timers.length === 1 && clock.holding, "waiting again");
  clock.advance(month + 10);
  assert.ok(far.expiredAt !== undefined && far.expiredAt >= month);
});

// Through a client: a scripted gateway that reads the requests and never answers them.

let cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const step of cleanup.reverse()) await step();
  cleanup = [];
});

async function silentGateway() {
  const gateway = await ScriptedGateway.listen();
  const connecting = Client.connect({ endpoints: [gateway.url], transport: nodeTransport, keepaliveIntervalMs: 0 });
  const peer = await gateway.acceptHandshake({ maxInFlight: 1000 });
  const client = await connecting;
  cleanup.push(async () => {
    await client.close();
    await gateway.close();
  });
  return { client, peer };
}

const METHOD = { id: 0x2a, name: "examples.tracker.Tracker.get", idempotent: true };

test("many calls in flight each fail at their own deadline, not before, with a CANCEL each", async () => {
  const { client, peer } = await silentGateway();
  const n = 300;
  const started = performance.now();
  const outcomes = Array.from({ length: n }, (_, i) => {
    const timeoutMs = 60 + (i % 7) * 25;
    return rejectsWith(client.call(METHOD, Uint8Array.of(i), { timeoutMs }), Code.DEADLINE_EXCEEDED).then((error) => ({
      timeoutMs,
      took: performance.now() - started,
      error,
    }));
  });
  const requests = [];
  for (let i = 0; i < n; i += 1) requests.push(await peer.next("request"));
  assert.deepEqual(
    requests.map((r) => r.requestId),
    Array.from({ length: n }, (_, i) => i + 1),
  );
  for (const { timeoutMs, took, error } of await Promise.all(outcomes)) {
    assert.ok(took >= timeoutMs, `a call of ${timeoutMs} ms failed after ${took} ms`);
    assert.ok(took < timeoutMs + 500, `a call of ${timeoutMs} ms failed only after ${took} ms`);
    assert.match(error.message, new RegExp(`did not answer within ${timeoutMs} ms`));
  }
  const cancels = new Set<number>();
  for (let i = 0; i < n; i += 1) cancels.add((await peer.next("cancel")).requestId);
  assert.equal(cancels.size, n, "one CANCEL per call");
});

test("a call with a deadline weeks away is not failed early", async () => {
  const { client, peer } = await silentGateway();
  let settled = false;
  const call = client.call(METHOD, Uint8Array.of(1), { timeoutMs: 0xffff_ffff }).finally(() => {
    settled = true;
  });
  const request = await peer.next("request");
  assert.equal(request.timeoutMs, 0xffff_ffff);
  await new Promise((resolve) => setTimeout(resolve, 50));
  assert.equal(settled, false, "still waiting for its answer");
  peer.send({ type: "response", requestId: request.requestId, payload: Uint8Array.of(2) });
  assert.deepEqual(await call, Uint8Array.of(2));
});

test("a subscribe with no answer fails at its deadline, not before, and is taken back", async () => {
  const { client, peer } = await silentGateway();
  const topic = { id: 0x5e1f00d5, name: "examples.tracker.Tracker.position" };
  const started = performance.now();
  const subscribing = client.subscribe(topic, { allKeys: true }, { decode: (b) => b, timeoutMs: 80 });
  const subscribe = await peer.next("subscribe");
  const error = await rejectsWith(subscribing, Code.DEADLINE_EXCEEDED);
  const took = performance.now() - started;
  assert.ok(took >= 80 && took < 600, `failed after ${took} ms`);
  assert.match(error.message, /got no answer within 80 ms/);
  assert.deepEqual(await peer.next("unsubscribe"), { type: "unsubscribe", subscriptionId: subscribe.subscriptionId });
});

test("aborting some of many calls in flight cancels those, and the others still get their answers", async () => {
  const { client, peer } = await silentGateway();
  const n = 200;
  const controllers = Array.from({ length: n }, () => new AbortController());
  const calls = controllers.map((c, i) => client.call(METHOD, Uint8Array.of(i), { signal: c.signal, timeoutMs: 20_000 }));
  for (let i = 0; i < n; i += 1) await peer.next("request");
  const aborted = Array.from({ length: n }, (_, i) => i).filter((i) => i % 4 === 1);
  for (const i of aborted) controllers[i]!.abort(new Error(`user ${i} left`));
  for (const i of aborted) {
    const error = await rejectsWith(calls[i]!, Code.CANCELLED);
    assert.ok(error.cause instanceof Error && error.cause.message === `user ${i} left`);
  }
  const cancels = [];
  for (let i = 0; i < aborted.length; i += 1) cancels.push((await peer.next("cancel")).requestId);
  assert.deepEqual(
    cancels.sort((a, b) => a - b),
    aborted.map((i) => i + 1),
  );
  // Every request is answered (the cancelled ones too, as the protocol says); the answers of
  // the cancelled ones go to nobody.
  peer.send(...Array.from({ length: n }, (_, i) => ({ type: "response" as const, requestId: i + 1, payload: Uint8Array.of(i, i) })));
  for (let i = 0; i < n; i += 1) {
    if (aborted.includes(i)) continue;
    assert.deepEqual(await calls[i], Uint8Array.of(i, i));
  }
  // A late abort, after the answer, changes nothing.
  controllers[0]!.abort();
  assert.deepEqual(await calls[0], Uint8Array.of(0, 0));
});

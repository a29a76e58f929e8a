/**
 * One topic subscription from the application's side: a bounded queue of events the connection
 * pushes into without ever waiting, read as an async iterable of decoded {@link TopicEvent}s.
 *
 * The queue holds at most the client's `subscriptionBuffer` events. When it is full the oldest
 * is dropped and counted in the `missed` of the event after it, together with the events the
 * gateway dropped for this subscriber (MISSED): an application that falls behind loses old
 * events and learns how many, and neither the connection nor memory waits for it. Events are
 * decoded when the application reads them, so dropped ones cost no decoding.
 *
 * A subscription outlives connections: when one is lost, the next subscribes again (the
 * client does that), and the first event after that has `resumed` set. A subscription to a topic
 * with history keeps its position (the last the gateway gave), and the next connection
 * subscribes from it: the missed events come first and the resumed event has `recovered` set,
 * or, when the gateway cannot give them whole, `onLost` is called where the gap is
 * (`docs/protocol.md`, "History and recovery").
 *
 * @module
 */

import type { TopicDesc } from "./call.js";
import { type Deadlines, Timed } from "./deadlines.js";
import { recoveryName } from "./protocol/frame.js";
import { Code, RpcError } from "./status.js";

/** What to subscribe to: one key of a keyed topic, every key of one, or an unkeyed topic. */
export type Selector = { key: string } | { allKeys: true } | { unkeyed: true };

/** One event of a subscription. */
export interface TopicEvent<T> {
  /** The event's key; empty for an unkeyed topic. */
  readonly key: string;
  /** The decoded message. */
  readonly message: T;
  /**
   * Events of this subscription lost just before this one: dropped by the gateway (MISSED) or
   * by the client's full buffer. 0 when none were.
   */
  readonly missed: number;
  /**
   * The first event after the client subscribed again on a new connection. Unless `recovered`
   * is set too, what was published while it reconnected is lost, and not counted in `missed`.
   */
  readonly resumed: boolean;
  /**
   * With `resumed`, on a topic with history: every event published while the connection was
   * down was recovered and came before this one.
   */
  readonly recovered: boolean;
}

/** A live subscription: iterate it for its events. */
export interface Subscription<T> extends AsyncIterable<TopicEvent<T>> {
  /** Unsubscribes; pending iteration ends. */
  close(): void;
  /** Resolves when the subscription ends: undefined if closed by the app, the RpcError otherwise. */
  readonly ended: Promise<RpcError | undefined>;
}

/** How to subscribe. */
export interface SubscribeOptions<T> {
  /** Turns an event's payload into the message (generated code verifies, then wraps). */
  decode: (payload: Uint8Array) => T;
  /** Aborting it before the gateway confirms abandons the subscribe; after, closes the subscription. */
  signal?: AbortSignal;
  /** How long to wait for the gateway's confirmation, in ms. Default: the client's `defaultTimeoutMs`. */
  timeoutMs?: number;
  /** Events `decode` throws on are skipped and reported here (with the event's key). */
  onDecodeError?: (error: unknown, key: string) => void;
  /**
   * Called, in order with the events, where a subscription to a topic with history was restored
   * without what it missed (the gateway's history no longer holds it, or is another one): the
   * `RpcError` is `data_loss` and says why. Reload what depends on the topic; the events after
   * the call are live ones.
   */
  onLost?: (error: RpcError) => void;
  /**
   * How many unread events this subscription holds before it drops the oldest. Default: the
   * client's `subscriptionBuffer`.
   */
  bufferSize?: number;
}

interface RawEvent {
  key: string;
  payload: Uint8Array;
  missed: number;
  resumed: boolean;
  recovered: boolean;
}

/** Where a restore could not recover what the subscription missed. */
interface Lost {
  lost: RpcError;
}

/** A subscription's place in its topic's history. */
export interface StreamPosition {
  readonly epoch: bigint;
  readonly offset: bigint;
}

/** SUBSCRIBED_AT's `recovery`: 1 is recovered. */
const RECOVERED = 1;

/** A FIFO with O(1) removal at the front. */
class Queue<T> {
  private items: (T | undefined)[] = [];
  private head = 0;

  get length(): number {
    return this.items.length - this.head;
  }
  push(item: T): void {
    this.items.push(item);
  }
  peek(): T | undefined {
    return this.items[this.head];
  }
  shift(): T | undefined {
    if (this.head >= this.items.length) return undefined;
    const item = this.items[this.head];
    this.items[this.head] = undefined;
    this.head += 1;
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return item;
  }
  clear(): void {
    this.items = [];
    this.head = 0;
  }
  /** Puts `items` back at the front, in order. */
  unshiftAll(items: T[]): void {
    this.items = [...items, ...this.items.slice(this.head)];
    this.head = 0;
  }
  /** The first item that `test` accepts. */
  firstWhere<U extends T>(test: (item: T) => item is U): U | undefined {
    for (let i = this.head; i < this.items.length; i++) {
      const item = this.items[i];
      if (item !== undefined && test(item)) return item;
    }
    return undefined;
  }
}

/** The connection a subscription is subscribed on, as far as the client needs it. */
export interface FeedCarrier {
  /** The application no longer wants `feed`: UNSUBSCRIBE. */
  unsubscribe(feed: Feed<unknown>): void;
}

/** What a subscription asks of the client that holds it. */
export interface SubscriptionOwner {
  /** Where the deadline for the gateway's confirmation is kept. */
  readonly deadlines: Deadlines;
  /** The application closed the subscription: unsubscribe it wherever it is. */
  closed(feed: Feed<unknown>): void;
  /**
   * The deadline for the gateway's confirmation passed, or the signal aborted before it: take
   * the SUBSCRIBE back (UNSUBSCRIBE if it was sent) and {@link Feed.refuse} it.
   */
  giveUp(feed: Feed<unknown>, why: "deadline" | "abort"): void;
}

/**
 * A subscription's state and queue, shared by the client (which subscribes it on each
 * connection and pushes events) and the application (which iterates it).
 */
export class Feed<T> extends Timed implements Subscription<T>, AsyncIterator<TopicEvent<T>> {
  /** `subscribing` until the gateway first confirms it, `open` until it ends or is closed. */
  phase: "subscribing" | "open" | "ended" = "subscribing";
  /** The connection holding it now and its id there (each connection has its own ids). */
  conn: FeedCarrier | null = null;
  id = 0;
  readonly ended: Promise<RpcError | undefined>;
  /** Resolves with the subscription when the gateway first confirms it (SUBSCRIBED). */
  readonly subscribed: Promise<Subscription<T>>;

  /** The subscription's position in its topic's history, once the gateway gave one. */
  position: StreamPosition | null = null;
  private readonly queue = new Queue<RawEvent | Lost>();
  /** Events in `queue` (its `Lost` notices do not count against the capacity). */
  private events = 0;
  /** Lost events not yet counted in a queued event; the next one queued carries them. */
  private missed = 0;
  /** The next event queued is the first on a new connection. */
  private resumed = false;
  /** With `resumed`: what was missed was recovered. */
  private recovered = false;
  private readonly waiters: ((result: IteratorResult<TopicEvent<T>>) => void)[] = [];
  private resolveEnded!: (error: RpcError | undefined) => void;
  private confirm!: { resolve(sub: Subscription<T>): void; reject(error: RpcError): void };
  private readonly onAbort: (() => void) | undefined;

  constructor(
    readonly topic: TopicDesc,
    readonly allKeys: boolean,
    readonly key: string,
    private readonly capacity: number,
    /** How long to wait for the confirmation, in ms (or `Infinity`). */
    readonly timeoutMs: number,
    private readonly options: SubscribeOptions<T>,
    private readonly owner: SubscriptionOwner,
  ) {
    super();
    this.ended = new Promise((resolve) => {
      this.resolveEnded = resolve;
    });
    this.subscribed = new Promise((resolve, reject) => {
      this.confirm = { resolve, reject };
    });
    if (timeoutMs !== Infinity) {
      this.deadline = performance.now() + timeoutMs;
      owner.deadlines.add(this);
    }
    const signal = options.signal;
    if (signal) {
      this.onAbort = () => {
        if (this.phase === "subscribing") owner.giveUp(this as Feed<unknown>, "abort");
        else this.close();
      };
      signal.addEventListener("abort", this.onAbort, { once: true });
    }
  }

  /** The signal the subscription was made with. */
  get signal(): AbortSignal | undefined {
    return this.options.signal;
  }

  /** The gateway confirmed the first SUBSCRIBE: the caller gets the subscription. */
  open(): void {
    if (this.phase !== "subscribing") return;
    this.phase = "open";
    this.unschedule();
    this.confirm.resolve(this);
  }

  /** The first SUBSCRIBE failed (refused, timed out, abandoned): the caller gets `error`. */
  refuse(error: RpcError): void {
    if (this.phase !== "subscribing") return;
    this.phase = "ended";
    this.conn = null;
    this.release();
    this.confirm.reject(error);
    this.resolveEnded(error);
  }

  /** The deadline for the gateway's confirmation passed (the wheel calls this). */
  expire(): void {
    if (this.phase === "subscribing") this.owner.giveUp(this as Feed<unknown>, "deadline");
  }

  private release(): void {
    this.unschedule();
    if (this.onAbort) this.options.signal?.removeEventListener("abort", this.onAbort);
  }

  /**
   * Queues an event (the connection calls this), dropping the oldest when the queue is full. An
   * `offset` (EVENT_AT) moves the position forward.
   */
  push(key: string, payload: Uint8Array, offset?: bigint): void {
    if (offset !== undefined && this.position && offset > this.position.offset) {
      this.position = { epoch: this.position.epoch, offset };
    }
    if (this.phase !== "open") return;
    if (this.events >= this.capacity) this.dropOldest();
    const recovered = this.resumed && this.recovered;
    this.queue.push({ key, payload, missed: this.missed, resumed: this.resumed, recovered });
    this.events += 1;
    this.missed = 0;
    this.resumed = false;
    this.recovered = false;
    this.deliver();
  }

  /**
   * The gateway opened the subscription at a position (SUBSCRIBED_AT). On a `restored`
   * subscription, a recovery that failed is queued as a notice for `onLost`; one that succeeded
   * marks the next event `recovered`.
   */
  openedAt(recovery: number, epoch: bigint, offset: bigint, restored: boolean): void {
    this.position = { epoch, offset };
    if (!restored) return;
    if (recovery === RECOVERED) this.recovered = true;
    else this.lost(recovery === 0 ? "there was no position to recover from" : recoveryName(recovery));
  }

  /**
   * The gateway opened the subscription without a position (SUBSCRIBED). A restored
   * subscription to a topic with history lost what was published meanwhile.
   */
  opened(restored: boolean): void {
    this.position = null;
    if (restored && this.topic.history) this.lost("the gateway keeps no history for this connection");
  }

  private lost(why: string): void {
    if (this.phase !== "open") return;
    const error = new RpcError(
      Code.DATA_LOSS,
      `${this.topic.name}: the events published while the subscription was down were not recovered (${why}); reload what depends on them`,
      { retryable: false },
    );
    this.queue.push({ lost: error });
    this.deliver();
  }

  /** Drops the oldest event (a notice stays), carrying what it counted to the next event. */
  private dropOldest(): void {
    const kept: (RawEvent | Lost)[] = [];
    let dropped: RawEvent | undefined;
    while (!dropped) {
      const item = this.queue.shift();
      if (item === undefined) break;
      if ("lost" in item) kept.push(item);
      else dropped = item;
    }
    if (kept.length > 0) this.queue.unshiftAll(kept);
    if (!dropped) return;
    this.events -= 1;
    this.carry(dropped.missed + 1, dropped.resumed, dropped.recovered);
  }

  /** Counts events the gateway dropped (MISSED) into the next event. */
  addMissed(count: number): void {
    if (this.phase === "open") this.missed += count;
  }

  /** The subscription is being restored on a new connection: the next event says so. */
  markResumed(): void {
    this.resumed = true;
    this.recovered = false;
  }

  /**
   * Ends the subscription with `error` (a refusal when it was never confirmed): queued events
   * can still be read, then iteration ends.
   */
  end(error: RpcError): void {
    if (this.phase === "subscribing") return this.refuse(error);
    if (this.phase === "ended") return;
    this.phase = "ended";
    this.conn = null;
    this.release();
    this.resolveEnded(error);
    this.deliver();
  }

  close(): void {
    this.queue.clear();
    this.events = 0;
    if (this.phase !== "ended") {
      this.phase = "ended";
      this.release();
      this.resolveEnded(undefined);
      this.owner.closed(this as Feed<unknown>);
      this.conn = null;
    }
    this.deliver();
  }

  /** Lost events move to the event after the one dropped (or skipped), or wait for the next. */
  private carry(missed: number, resumed: boolean, recovered: boolean): void {
    const next = this.queue.firstWhere((item): item is RawEvent => !("lost" in item));
    if (next) {
      next.missed += missed;
      next.resumed ||= resumed;
      next.recovered ||= recovered;
    } else {
      this.missed += missed;
      this.resumed ||= resumed;
      this.recovered ||= recovered;
    }
  }

  /** Hands queued events to waiting readers, and the end once the queue is empty. */
  private deliver(): void {
    while (this.waiters.length > 0) {
      const event = this.take();
      if (event) {
        this.waiters.shift()!({ value: event, done: false });
      } else if (this.phase === "ended") {
        this.waiters.shift()!({ value: undefined, done: true });
      } else {
        return;
      }
    }
  }

  /** The next decodable event; undecodable ones are reported and skipped, as are notices. */
  private take(): TopicEvent<T> | undefined {
    for (;;) {
      const raw = this.queue.shift();
      if (!raw) return undefined;
      if ("lost" in raw) {
        this.options.onLost?.(raw.lost);
        continue;
      }
      this.events -= 1;
      let message: T;
      try {
        message = this.options.decode(raw.payload);
      } catch (error) {
        this.carry(raw.missed, raw.resumed, raw.recovered);
        this.options.onDecodeError?.(error, raw.key);
        continue;
      }
      const { key, missed, resumed, recovered } = raw;
      return { key, message, missed, resumed, recovered };
    }
  }

  next(): Promise<IteratorResult<TopicEvent<T>>> {
    const event = this.take();
    if (event) return Promise.resolve({ value: event, done: false });
    if (this.phase === "ended") return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** Leaving a `for await` loop closes the subscription. */
  return(): Promise<IteratorResult<TopicEvent<T>>> {
    this.close();
    return Promise.resolve({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): AsyncIterator<TopicEvent<T>> {
    return this;
  }
}

/** The SUBSCRIBE fields of a selector. */
export function selectorFields(topic: TopicDesc, selector: Selector): { allKeys: boolean; key: string } {
  if (typeof selector === "object" && selector !== null) {
    if ("key" in selector) {
      if (typeof selector.key !== "string" || selector.key === "") {
        throw new RpcError(3, `a key of ${topic.name} is a non-empty string, not ${JSON.stringify(selector.key)}`, {
          retryable: false,
        });
      }
      return { allKeys: false, key: selector.key };
    }
    if ("allKeys" in selector && selector.allKeys === true) return { allKeys: true, key: "" };
    if ("unkeyed" in selector && selector.unkeyed === true) return { allKeys: false, key: "" };
  }
  throw new RpcError(
    3,
    `a selector of ${topic.name} is { key: "..." }, { allKeys: true } or { unkeyed: true }, not ${JSON.stringify(selector)}`,
    { retryable: false },
  );
}

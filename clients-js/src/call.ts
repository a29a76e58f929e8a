/**
 * One request from the caller's side: a call (REQUEST), a publication that wants an answer
 * (PUBLISH) or a token refresh (AUTH), with its deadline and its `AbortSignal`. It waits in the
 * client's queue until a connection has room for it, is in flight on one connection, and
 * settles exactly once: with the gateway's answer, or with an {@link RpcError}.
 *
 * A request is one object and one promise: its deadline is an entry on the client's
 * {@link Deadlines} wheel (no timer of its own), it listens to its signal itself (no closure),
 * and it writes its own frame ({@link Op.encode}). It knows the connection carrying it only as
 * a {@link Carrier}, and the client only as its {@link OpOwner}: this module sits below both.
 *
 * @module
 */

import { type Deadlines, Timed } from "./deadlines.js";
import { encodeFrame, encodeRequest } from "./protocol/encode.js";
import { U32_MAX } from "./protocol/frame.js";
import type { RpcError } from "./status.js";

/** A method as rpcgen describes it; generated code passes these to {@link Client.call}. */
export interface MethodDesc {
  /** The 32-bit id rpcgen assigns to the method. */
  readonly id: number;
  /** Its fully qualified name (`examples.some_api.SomeApi.sum`), for errors and logs. */
  readonly name: string;
  /** Whether running it twice is harmless, so that a call lost with its connection may be retried. */
  readonly idempotent: boolean;
}

/** A topic as rpcgen describes it. */
export interface TopicDesc {
  readonly id: number;
  readonly name: string;
  /**
   * The topic keeps its last events (`history: N` in its service file): a subscription restored
   * on a new connection recovers what it missed, or says it could not.
   */
  readonly history?: { readonly events: number; readonly ttlMs: number };
}

/** Per-call options. */
export interface CallOptions {
  /**
   * How long to wait for the answer, in ms, counted from the call: it bounds the wait for a
   * connection and for room under the gateway's in-flight limit too, and the time left travels
   * with the request. `Infinity`: no deadline. Default: the client's `defaultTimeoutMs`.
   */
  timeoutMs?: number;
  /**
   * Aborting it abandons the call: a request in flight is cancelled (CANCEL), and the promise
   * rejects with {@link RpcError} `cancelled` whose `cause` is the signal's reason.
   */
  signal?: AbortSignal;
}

/** A call wanting a reply, a fire-and-forget call (`send`), a publication, or a token refresh. */
export type OpKind = "call" | "send" | "publish" | "auth";

/** How a request ends without an answer: its deadline passed, or its signal aborted. */
export type GiveUp = "deadline" | "abort";

/** What a request is about: a method, a topic, or {@link AUTH}. */
export type Target = MethodDesc | TopicDesc;

/** The target of a token refresh. */
export const AUTH: MethodDesc = { id: 0, name: "AUTH", idempotent: true };

/** Who decides how a request ends when its caller stops waiting: the client. */
export interface OpOwner {
  /** Where the requests' deadlines are kept. */
  readonly deadlines: Deadlines;
  /**
   * Called once when the deadline passes or the signal aborts before an answer: takes the
   * request out of wherever it waits (or cancels it) and rejects it.
   */
  giveUp(op: Op, why: GiveUp): void;
}

/** The connection a request is in flight on, as far as the request's owner needs it. */
export interface Carrier {
  /** The caller gave up on `op` while it is in flight: tell the gateway (CANCEL). */
  cancel(op: Op): void;
}

// `new Promise(capture)` hands the resolving functions over without a closure per request.
let capturedResolve: (value: Uint8Array | undefined) => void = () => {};
let capturedReject: (error: RpcError) => void = () => {};
function capture(resolve: (value: Uint8Array | undefined) => void, reject: (error: RpcError) => void): void {
  capturedResolve = resolve;
  capturedReject = reject;
}

/** One request, from the call until it settles. */
export class Op extends Timed {
  /** AUTH and fire-and-forget calls do not count against the gateway's `max_in_flight`. */
  readonly counted: boolean;
  /**
   * Settles with the reply's bytes for a call, `undefined` for the other kinds, or rejects with
   * an {@link RpcError}.
   */
  readonly promise: Promise<Uint8Array | undefined>;
  /** The connection it was sent on, and its id there (0 until sent). */
  carrier: Carrier | null = null;
  requestId = 0;
  settled = false;

  private readonly resolveFn: (value: Uint8Array | undefined) => void;
  private readonly rejectFn: (error: RpcError) => void;

  /**
   * A request, scheduled on its owner's wheel when `timeoutMs` is finite and listening to
   * `signal` (not aborted yet) when there is one.
   *
   * @param payload the request's or the publication's bytes, or AUTH's token.
   * @param key a publication's key; empty otherwise.
   * @param timeoutMs as asked (ms, or `Infinity`), for the deadline and for messages.
   * @param now `performance.now()` at the call: the deadline counts from there.
   */
  constructor(
    private readonly owner: OpOwner,
    readonly kind: OpKind,
    readonly target: Target,
    readonly payload: Uint8Array,
    readonly key: string,
    readonly timeoutMs: number,
    readonly signal: AbortSignal | undefined,
    now: number,
  ) {
    super();
    this.counted = kind !== "auth" && kind !== "send";
    this.promise = new Promise(capture);
    this.resolveFn = capturedResolve;
    this.rejectFn = capturedReject;
    if (timeoutMs !== Infinity) {
      this.deadline = now + timeoutMs;
      owner.deadlines.add(this);
    }
    if (signal !== undefined) signal.addEventListener("abort", this);
  }

  /** The method's or topic's name, or `"AUTH"`. */
  get name(): string {
    return this.target.name;
  }

  /** Whether it may be retried after its connection was lost with it in flight. */
  get idempotent(): boolean {
    return this.kind !== "publish" && (this.target as MethodDesc).idempotent;
  }

  /**
   * Its frame, in byte-stream form, under `requestId`; the timeout it carries is the time left
   * at `now` (rounded up, at least 1 ms).
   *
   * @throws {FrameEncodeError} when it is larger than `maxFrameSize` or a field is out of range.
   */
  encode(requestId: number, now: number, maxFrameSize: number): Uint8Array {
    switch (this.kind) {
      case "call":
      case "send":
        return encodeRequest(
          requestId,
          this.target.id,
          wireTimeout(this.deadline, now, this.timeoutMs),
          this.kind === "send",
          this.payload,
          maxFrameSize,
        );
      case "publish":
        return encodeFrame({ type: "publish", requestId, topicId: this.target.id, key: this.key, payload: this.payload }, maxFrameSize);
      case "auth":
        return encodeFrame({ type: "auth", requestId, token: this.payload }, maxFrameSize);
    }
  }

  /** The deadline passed (the wheel calls this). */
  expire(): void {
    if (!this.settled) this.owner.giveUp(this, "deadline");
  }

  /** The signal aborted (an `EventListener` object, so that no closure is needed). */
  handleEvent(): void {
    if (!this.settled) this.owner.giveUp(this, "abort");
  }

  resolve(value: Uint8Array | undefined): void {
    if (this.settle()) this.resolveFn(value);
  }

  reject(error: RpcError): void {
    if (this.settle()) this.rejectFn(error);
  }

  private settle(): boolean {
    if (this.settled) return false;
    this.settled = true;
    this.unschedule();
    if (this.signal !== undefined) this.signal.removeEventListener("abort", this);
    return true;
  }
}

/**
 * A deadline as REQUEST carries it at `now`: the ms left, rounded up (the gateway must not give
 * up before the client does), at least 1 (0 would mean none), at most the timeout asked
 * (`timeoutMs`, rounded up) and `u32::MAX`; 0 for no deadline.
 */
export function wireTimeout(deadline: number, now: number, timeoutMs: number): number {
  if (deadline === Infinity) return 0;
  // `(now + t) - now` may exceed `t` by a rounding error: never send more than was asked.
  return Math.min(U32_MAX, Math.ceil(timeoutMs), Math.max(1, Math.ceil(deadline - now)));
}

/** `"within 200 ms"`, for messages. */
export function within(timeoutMs: number): string {
  return `within ${Math.round(timeoutMs)} ms`;
}

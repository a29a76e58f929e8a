/**
 * One request from the caller's side: a call (REQUEST), a publication that wants an answer
 * (PUBLISH) or a token refresh (AUTH), with its deadline and its `AbortSignal`. It waits in the
 * client's queue until a connection has room for it, is in flight on one connection, and
 * settles exactly once: with the gateway's answer, or with an {@link RpcError}.
 *
 * Its deadline is an entry on the client's {@link Deadlines} wheel, not a timer of its own. It
 * knows the connection carrying it only as a {@link Carrier}: this module sits below both the
 * connection and the client.
 *
 * @module
 */

import { type Deadlines, Timed } from "./deadlines.js";
import type { AuthOkFrame, Frame, ResponseFrame } from "./protocol/frame.js";
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

/** What a request is. */
/** A call wanting a reply, a fire-and-forget call (`send`), a publication, or a token refresh. */
export type OpKind = "call" | "send" | "publish" | "auth";

/** How a request ends without an answer: its deadline passed, or its signal aborted. */
export type GiveUp = "deadline" | "abort";

export interface OpInit {
  readonly kind: OpKind;
  /** The method's or topic's name, or `"AUTH"`. */
  readonly name: string;
  /** Whether it may be retried after its connection was lost with it in flight. */
  readonly idempotent: boolean;
  /** The frame to send under a request id, with the time left in ms (0: no deadline). */
  readonly build: (requestId: number, timeoutMs: number) => Frame;
  /** The timeout as asked (ms, or `Infinity`), for messages. */
  readonly timeoutMs: number;
  readonly signal: AbortSignal | undefined;
  /** Where the deadline is kept. */
  readonly deadlines: Deadlines;
  /**
   * Called once when the deadline passes or the signal aborts before an answer: takes the
   * request out of wherever it waits (or cancels it) and rejects it.
   */
  readonly giveUp: (op: Op, why: GiveUp) => void;
}

/** The connection a request is in flight on, as far as the request's owner needs it. */
export interface Carrier {
  /** The caller gave up on `op` while it is in flight: tell the gateway (CANCEL). */
  cancel(op: Op): void;
}

/** The answer a request resolves with. */
export type Answer = ResponseFrame | AuthOkFrame | { readonly type: "sent" };

/** One request, from the call until it settles. */
export class Op extends Timed {
  readonly kind: OpKind;
  readonly name: string;
  readonly idempotent: boolean;
  /** AUTH and fire-and-forget calls do not count against the gateway's `max_in_flight`. */
  readonly counted: boolean;
  readonly timeoutMs: number;
  readonly promise: Promise<Answer>;
  readonly signal: AbortSignal | undefined;
  /** The connection it was sent on, and its id there (0 until sent). */
  carrier: Carrier | null = null;
  requestId = 0;
  settled = false;

  private readonly build: OpInit["build"];
  private resolveFn!: (answer: Answer) => void;
  private rejectFn!: (error: RpcError) => void;
  private readonly giveUp: OpInit["giveUp"];
  private readonly onAbort: (() => void) | undefined;

  constructor(init: OpInit) {
    super();
    this.kind = init.kind;
    this.name = init.name;
    this.idempotent = init.idempotent;
    this.counted = init.kind !== "auth" && init.kind !== "send";
    this.timeoutMs = init.timeoutMs;
    this.build = init.build;
    this.signal = init.signal;
    this.giveUp = init.giveUp;
    this.promise = new Promise<Answer>((resolve, reject) => {
      this.resolveFn = resolve;
      this.rejectFn = reject;
    });
    if (init.timeoutMs !== Infinity) {
      // When the caller stops waiting, on `performance.now()`'s clock (the wheel's).
      this.deadline = performance.now() + init.timeoutMs;
      init.deadlines.add(this);
    }
    if (init.signal) {
      this.onAbort = () => {
        if (!this.settled) init.giveUp(this, "abort");
      };
      init.signal.addEventListener("abort", this.onAbort, { once: true });
    }
  }

  /** The deadline passed (the wheel calls this). */
  expire(): void {
    if (!this.settled) this.giveUp(this, "deadline");
  }

  /** The frame under `requestId`, its timeout the time left now (rounded up, at least 1 ms). */
  frame(requestId: number): Frame {
    return this.build(requestId, wireTimeout(this.deadline));
  }

  resolve(answer: Answer): void {
    if (this.settle()) this.resolveFn(answer);
  }

  reject(error: RpcError): void {
    if (this.settle()) this.rejectFn(error);
  }

  private settle(): boolean {
    if (this.settled) return false;
    this.settled = true;
    this.unschedule();
    if (this.onAbort) this.signal?.removeEventListener("abort", this.onAbort);
    return true;
  }
}

/**
 * A deadline as REQUEST carries it: the ms left, rounded up (the gateway must not give up
 * before the client does), at least 1 (0 would mean none), at most `u32::MAX`; 0 for no deadline.
 */
export function wireTimeout(deadline: number): number {
  if (deadline === Infinity) return 0;
  return Math.min(U32_MAX, Math.max(1, Math.ceil(deadline - performance.now())));
}

/** `"within 200 ms"`, for messages. */
export function within(timeoutMs: number): string {
  return `within ${Math.round(timeoutMs)} ms`;
}

/**
 * One connection to a gateway: the handshake (HELLO, WELCOME), its requests in flight by id,
 * its subscriptions by id, keepalive PINGs, token refresh before the credentials expire, and
 * GOAWAY (`docs/protocol.md`, "Connection lifecycle").
 *
 * The client decides what to send where ({@link Client}); a connection only knows its own ids
 * and frames. It takes calls until GOAWAY arrives or it is lost, and says so once through
 * {@link Connection.done}; after a GOAWAY it stays open, without taking calls, until the
 * requests the gateway promised to answer are answered (or their callers gave up).
 *
 * @module
 */

import { AUTH, type Carrier, Op, type OpOwner, within } from "./call.js";
import { Ids } from "./ids.js";
import type { ResolvedOptions } from "./options.js";
import { decodeMessage, FrameDecodeError, frameTypeName, readU32, view } from "./protocol/decode.js";
import { encodeFrame, FrameEncodeError } from "./protocol/encode.js";
import {
  CAPABILITY_HISTORY,
  FRAME_NUMBERS,
  type Frame,
  FrameType,
  type GoawayFrame,
  GoawayReason,
  goawayReasonName,
  MIN_MAX_FRAME_SIZE,
  U32_MAX,
  VERSION,
  type WelcomeFrame,
} from "./protocol/frame.js";
import { Code, RpcError } from "./status.js";
import type { Feed, FeedCarrier } from "./subscription.js";
import type { Link, LinkEvents } from "./transport.js";

/** Why a connection stopped taking calls. */
export type End = { readonly kind: "goaway"; readonly goaway: GoawayFrame } | { readonly kind: "lost"; readonly reason: string };

/** What a connection asks of the client that owns it. */
export interface ConnectionHost {
  readonly options: ResolvedOptions;
  /** The owner of the requests the connection makes itself (AUTH, for a token refresh). */
  readonly owner: OpOwner;
  /** There is room for more requests: send what waits. */
  pump(): void;
  /** The gateway confirmed a subscription's first SUBSCRIBE: later connections restore it. */
  confirmed(feed: Feed<unknown>): void;
  /** A confirmed subscription ended (SUBSCRIPTION_ENDED): it is no longer restored. */
  subscriptionEnded(feed: Feed<unknown>): void;
  /** A first SUBSCRIBE got no answer before the connection stopped: send it on the next one. */
  resubscribe(feed: Feed<unknown>): void;
  /** Fresh tokens for AUTH, when the application gave a token function. */
  readonly tokenProvider: (() => Promise<string>) | undefined;
}

/** Why one connection attempt failed; `goaway` when the gateway refused the client with one. */
export class AttemptError extends Error {
  constructor(
    message: string,
    readonly goaway?: GoawayFrame,
  ) {
    super(message);
    this.name = "AttemptError";
  }
}

/** `reason: message`, or the reason alone. */
export function describeGoaway(goaway: GoawayFrame): string {
  const reason = goawayReasonName(goaway.reason);
  return goaway.message === "" ? reason : `${reason}: ${goaway.message}`;
}

const utf8 = new TextEncoder();

/** The answer of a request that has no reply bytes. */
const EMPTY = new Uint8Array(0);

/** How many times a refresh is tried before the credentials expire. */
const REFRESH_ATTEMPTS = 3;

/** How long a closing connection waits for its transport to confirm, at most. */
const CLOSE_WAIT_MS = 2_000;

export class Connection implements Carrier, FeedCarrier {
  phase: "handshake" | "open" | "draining" | "closed" = "handshake";
  welcome!: WelcomeFrame;
  /** Resolves once, when the connection stops taking calls. */
  readonly done: Promise<End>;
  /** Resolves when the transport is closed. */
  readonly closed: Promise<void>;

  private link: Link | null = null;
  private readonly table = new Map<number, Op>();
  private counted = 0;
  private readonly requestIds = new Ids();
  private readonly subs = new Map<number, Feed<unknown>>();
  private readonly subscriptionIds = new Ids();
  private resolveDone!: (end: End) => void;
  private resolveClosed!: () => void;
  /** Resolves when the transport reports the link closed. */
  private readonly linkDown: Promise<void>;
  private resolveLinkDown!: () => void;
  private handshakeWaiter: { resolve(): void; reject(error: Error): void } | null = null;
  private keepalive: ReturnType<typeof setInterval> | undefined;
  private heard = false;
  private pinged = false;
  private nextPing = 1n;
  private refreshTimer: ReturnType<typeof setTimeout> | undefined;
  private grant: { at: number; lifetime: number } | undefined;
  private refreshAttempt = 1;
  private drainTimer: ReturnType<typeof setTimeout> | undefined;
  /** The GOAWAY this side sent, for the transport's close. */
  private said: { reason: number; message: string } | undefined;

  private constructor(
    private readonly host: ConnectionHost,
    /** The endpoint as the application wrote it. */
    readonly endpoint: string,
  ) {
    this.done = new Promise((resolve) => {
      this.resolveDone = resolve;
    });
    this.closed = new Promise((resolve) => {
      this.resolveClosed = resolve;
    });
    this.linkDown = new Promise((resolve) => {
      this.resolveLinkDown = resolve;
    });
  }

  /**
   * Opens a link to `url` and completes the handshake, presenting `token`.
   *
   * @throws {AttemptError} saying why: the transport failed, the gateway refused (with its
   *   GOAWAY), broke the protocol, or `signal` aborted (its reason's message).
   */
  static async open(host: ConnectionHost, endpoint: string, url: URL, token: string, signal: AbortSignal): Promise<Connection> {
    const conn = new Connection(host, endpoint);
    await conn.handshake(url, token, signal);
    return conn;
  }

  private async handshake(url: URL, token: string, signal: AbortSignal): Promise<void> {
    const o = this.host.options;
    const events: LinkEvents = {
      frame: (frame) => this.onFrame(frame),
      invalid: (message, reason) => this.protocolError(reason, message),
      closed: (reason) => {
        this.resolveLinkDown();
        this.lost(reason);
      },
    };
    try {
      this.link = await o.transport.open(url, events, { maxFrameSize: o.maxFrameSize, signal });
    } catch (e) {
      this.phase = "closed";
      this.resolveClosed();
      throw new AttemptError(signal.aborted ? abortMessage(signal) : message(e));
    }
    const waiting = new Promise<void>((resolve, reject) => {
      this.handshakeWaiter = { resolve, reject };
    });
    const abandon = () => this.failHandshake(new AttemptError(abortMessage(signal)));
    signal.addEventListener("abort", abandon, { once: true });
    if (signal.aborted) abandon();
    let hello: Uint8Array;
    try {
      hello = encodeFrame(
        {
          type: "hello",
          version: VERSION,
          maxFrameSize: o.maxFrameSize,
          clientName: o.name,
          token: utf8.encode(token),
          capabilities: CAPABILITY_HISTORY,
        },
        // The gateway's limit is not known yet: the protocol's minimum applies.
        MIN_MAX_FRAME_SIZE,
      );
    } catch (e) {
      this.failHandshake(new AttemptError(`cannot send HELLO: ${message(e)}`));
      return waiting.finally(() => signal.removeEventListener("abort", abandon));
    }
    if (this.phase === "handshake") this.link.send(hello);
    return waiting.finally(() => signal.removeEventListener("abort", abandon));
  }

  private failHandshake(error: AttemptError): void {
    const waiter = this.handshakeWaiter;
    if (!waiter) return;
    this.handshakeWaiter = null;
    this.close(error.message);
    waiter.reject(error);
  }

  private onWelcome(welcome: WelcomeFrame): void {
    if (welcome.version !== VERSION) {
      const what = `the gateway chose protocol version ${welcome.version}; this client speaks ${VERSION}`;
      this.goodbye(GoawayReason.UNSUPPORTED_VERSION, what);
      return this.failHandshake(new AttemptError(what));
    }
    if (welcome.maxFrameSize < MIN_MAX_FRAME_SIZE || welcome.maxInFlight === 0) {
      const what = `WELCOME states max_frame_size ${welcome.maxFrameSize} and max_in_flight ${welcome.maxInFlight}`;
      this.goodbye(GoawayReason.PROTOCOL_ERROR, what);
      return this.failHandshake(new AttemptError(`protocol error: ${what}`));
    }
    this.welcome = welcome;
    this.phase = "open";
    this.startKeepalive();
    this.setGrant(welcome.authExpiresInMs);
    const waiter = this.handshakeWaiter;
    this.handshakeWaiter = null;
    waiter?.resolve();
  }

  /** Whether a request that counts against `max_in_flight` can go out now. */
  hasRoom(): boolean {
    return this.phase === "open" && this.counted < this.welcome.maxInFlight;
  }

  /**
   * Sends `op` under a fresh request id, its timeout the time left at `now`
   * (`performance.now()`); rejects it instead when its frame cannot be sent.
   */
  send(op: Op, now: number): void {
    if (this.phase !== "open" || !this.link) throw new Error("send on a connection that takes no calls");
    const id = this.requestIds.allocate(this.table);
    let bytes: Uint8Array;
    try {
      bytes = op.encode(id, now, this.welcome.maxFrameSize);
    } catch (e) {
      op.reject(unsendable(op.name, this.endpoint, e));
      return;
    }
    if (op.kind === "send") {
      // Fire-and-forget: never in flight, so its id is free again at once and nothing answers.
      this.link.send(bytes);
      op.resolve(undefined);
      return;
    }
    op.carrier = this;
    op.requestId = id;
    this.table.set(id, op);
    if (op.counted) this.counted += 1;
    this.link.send(bytes);
  }

  /** The caller gave up on `op` while it is in flight: CANCEL. Its id stays in flight until answered. */
  cancel(op: Op): void {
    if (this.table.get(op.requestId) === op && op.kind === "call") {
      this.sendFrame({ type: "cancel", requestId: op.requestId });
    }
    if (this.phase === "draining") queueMicrotask(() => this.maybeDrained());
  }

  /** Sends SUBSCRIBE for `feed` under a fresh subscription id of this connection. */
  subscribe(feed: Feed<unknown>): void {
    if (this.phase !== "open") throw new Error("subscribe on a connection that takes no calls");
    const id = this.subscriptionIds.allocate(this.subs);
    const fields = { subscriptionId: id, topicId: feed.topic.id, allKeys: feed.allKeys, key: feed.key };
    // From the subscription's position when the gateway speaks positions: what it missed first.
    const from = ((this.welcome.capabilities ?? 0) & CAPABILITY_HISTORY) !== 0 ? feed.position : null;
    const frame: Frame = from ? { type: "subscribe_from", ...fields, ...from } : { type: "subscribe", ...fields };
    let bytes: Uint8Array;
    try {
      bytes = encodeFrame(frame, this.welcome.maxFrameSize);
    } catch (e) {
      feed.end(new RpcError(Code.INVALID_ARGUMENT, `cannot subscribe to ${feed.topic.name}: ${message(e)}`, { retryable: false }));
      this.host.subscriptionEnded(feed);
      return;
    }
    feed.conn = this;
    feed.id = id;
    this.subs.set(id, feed);
    this.link!.send(bytes);
  }

  /** The application no longer wants `feed`: UNSUBSCRIBE (frames already on their way are ignored). */
  unsubscribe(feed: Feed<unknown>): void {
    if (this.subs.get(feed.id) !== feed) return;
    this.subs.delete(feed.id);
    this.sendFrame({ type: "unsubscribe", subscriptionId: feed.id });
    feed.conn = null;
    feed.id = 0;
  }

  /** The client closes: calls in flight fail with `cancelled`, the gateway is told with a GOAWAY. */
  shutdown(): Promise<void> {
    if (this.phase !== "closed") {
      this.goodbye(GoawayReason.SHUTTING_DOWN, "");
      this.close("the client was closed", new RpcError(Code.CANCELLED, "the client was closed", { retryable: false }));
    }
    return this.closed;
  }

  /**
   * The client finishes: GOAWAY `done`, then the requests in flight are answered (each within
   * its deadline) and the connection closes. Subscriptions were ended by the client.
   */
  finish(): Promise<void> {
    if (this.phase !== "open") return this.shutdown();
    this.goodbye(GoawayReason.DONE, "");
    this.phase = "draining";
    this.subs.clear();
    this.stopRefresh();
    this.resolveDone({ kind: "lost", reason: "the client finished" });
    this.armDrainTimer();
    this.maybeDrained();
    return this.closed;
  }

  private sendFrame(frame: Frame): void {
    if (!this.link || this.phase === "closed") return;
    // Control frames are small and fixed-size: they fit every limit.
    this.link.send(encodeFrame(frame));
  }

  private onFrame(body: Uint8Array): void {
    if (this.phase === "closed") return;
    const max = this.host.options.maxFrameSize;
    // The frame of almost every call, read in place: RESPONSE (type, flags, request id, payload).
    if (body[0] === FrameType.RESPONSE && body.length >= 6 && body.length <= max && this.phase !== "handshake") {
      this.heard = true;
      return this.answer(readU32(body, 2), view(body, 6, body.length), undefined);
    }
    if (body.length > max) {
      return this.protocolError(
        GoawayReason.FRAME_TOO_LARGE,
        `frame of ${body.length} bytes is larger than the maximum of ${this.host.options.maxFrameSize}`,
      );
    }
    let frame: Frame | null;
    try {
      frame = decodeMessage(body);
    } catch (e) {
      if (e instanceof FrameDecodeError) return this.protocolError(e.goawayReason, e.message);
      throw e;
    }
    if (frame === null) {
      this.host.options.logger.debug?.(`skipped an ignorable frame of type ${frameTypeName(body[0]!)}`);
      return;
    }
    this.heard = true;
    if (this.phase === "handshake") {
      if (frame.type === "welcome") return this.onWelcome(frame);
      if (frame.type === "goaway") {
        const what = `refused: ${describeGoaway(frame)}`;
        const waiter = this.handshakeWaiter;
        this.handshakeWaiter = null;
        this.close(what);
        waiter?.reject(new AttemptError(what, frame));
        return;
      }
      return this.protocolError(GoawayReason.PROTOCOL_ERROR, `the gateway sent ${frameTypeName(FRAME_NUMBERS[frame.type])} before WELCOME`);
    }
    switch (frame.type) {
      case "response":
        return this.answer(frame.requestId, frame.payload, undefined);
      case "auth_ok":
        // Whoever asked, the connection's credentials now expire later.
        this.setGrant(frame.expiresInMs);
        return this.answer(frame.requestId, EMPTY, undefined);
      case "error":
        return this.answer(
          frame.requestId,
          EMPTY,
          new RpcError(frame.code, frame.message, { retryable: frame.retryable, errorId: frame.errorId, details: frame.details }),
        );
      case "ping":
        return this.sendFrame({ type: "pong", data: frame.data });
      case "pong":
        return;
      case "goaway":
        return this.onGoaway(frame);
      case "subscribed":
      case "subscribed_at": {
        const feed = this.subs.get(frame.subscriptionId);
        if (!feed) return;
        const restored = feed.phase !== "subscribing";
        if (frame.type === "subscribed_at") feed.openedAt(frame.recovery, frame.epoch, frame.offset, restored);
        else feed.opened(restored);
        if (!restored) {
          feed.open();
          this.host.confirmed(feed);
        }
        return;
      }
      case "event":
        this.subs.get(frame.subscriptionId)?.push(frame.key, frame.payload);
        return;
      case "event_at":
        this.subs.get(frame.subscriptionId)?.push(frame.key, frame.payload, frame.offset);
        return;
      case "missed":
        this.subs.get(frame.subscriptionId)?.addMissed(frame.count);
        return;
      case "subscription_ended": {
        const feed = this.subs.get(frame.subscriptionId);
        if (!feed) return;
        this.subs.delete(frame.subscriptionId);
        feed.conn = null;
        feed.id = 0;
        const error = new RpcError(frame.code, frame.message, { retryable: frame.retryable });
        const confirmed = feed.phase === "open";
        feed.end(error);
        if (confirmed) this.host.subscriptionEnded(feed);
        return;
      }
      default:
        return this.protocolError(GoawayReason.PROTOCOL_ERROR, `the gateway sent ${frameTypeName(FRAME_NUMBERS[frame.type])}`);
    }
  }

  /** The answer to `requestId`: a reply's bytes, or `error`. */
  private answer(requestId: number, payload: Uint8Array, error: RpcError | undefined): void {
    const op = this.table.get(requestId);
    if (op === undefined) {
      // A gateway bug, but not one that harms the requests in flight.
      this.host.options.logger.warn?.(`${this.endpoint}: an answer to request ${requestId}, which is not in flight`);
      return;
    }
    this.table.delete(requestId);
    if (op.counted) this.counted -= 1;
    if (error !== undefined) op.reject(error);
    else op.resolve(op.kind === "call" ? payload : undefined);
    if (this.phase === "open") this.host.pump();
    else if (this.phase === "draining") this.maybeDrained();
  }

  private onGoaway(goaway: GoawayFrame): void {
    if (this.phase !== "open") return;
    this.phase = "draining";
    this.host.options.logger.warn?.(`gateway ${this.endpoint} is going away: ${describeGoaway(goaway)}`);
    const notProcessed = `gateway ${this.endpoint} is going away (${describeGoaway(goaway)}) and did not process the request`;
    for (const [id, op] of this.table) {
      if (this.requestIds.sentAfter(id, goaway.lastRequestId)) {
        this.table.delete(id);
        if (op.counted) this.counted -= 1;
        op.reject(new RpcError(Code.UNAVAILABLE, notProcessed, { retryable: goaway.reconnect }));
      }
    }
    // The next connection restores the subscriptions; this one only drains its requests.
    this.detachSubscriptions();
    this.stopRefresh();
    this.resolveDone({ kind: "goaway", goaway });
    this.armDrainTimer();
    this.maybeDrained();
  }

  /** Closes once the last caller's deadline has passed: nobody waits for an answer any more. */
  private armDrainTimer(): void {
    const deadlines = [...this.table.values()].filter((op) => !op.settled).map((op) => op.deadline);
    const latest = Math.max(...deadlines.filter((d) => d !== Infinity));
    if (deadlines.length > 0 && deadlines.every((d) => d !== Infinity)) {
      // Past the last caller's deadline nobody waits any more; the gateway closes in any case.
      this.drainTimer = setTimeout(() => this.close("the drain ended"), Math.max(0, latest - performance.now()));
    }
  }

  /** After GOAWAY: once no caller waits for an answer, the connection has nothing left to do. */
  private maybeDrained(): void {
    if (this.phase !== "draining") return;
    for (const op of this.table.values()) if (!op.settled) return;
    this.close("the drain ended");
  }

  private detachSubscriptions(): void {
    for (const feed of this.subs.values()) {
      feed.conn = null;
      feed.id = 0;
      if (feed.phase === "subscribing") this.host.resubscribe(feed);
    }
    this.subs.clear();
  }

  /** The gateway broke the protocol: say why in a GOAWAY, and close. */
  private protocolError(reason: number, what: string): void {
    this.host.options.logger.warn?.(`protocol error from gateway ${this.endpoint}: ${what}`);
    this.goodbye(reason, what);
    if (this.phase === "handshake") return this.failHandshake(new AttemptError(`protocol error: ${what}`));
    this.close(`protocol error: ${what}`);
  }

  /** The link closed under us. */
  private lost(reason: string): void {
    if (this.phase === "handshake") {
      return this.failHandshake(new AttemptError(`${reason} before WELCOME`));
    }
    this.close(reason);
  }

  private goodbye(reason: number, what: string): void {
    if (this.phase === "closed") return;
    // A message is at most 65,535 bytes, and GOAWAY must fit the protocol's minimum frame size.
    const text = what.length > 1024 ? `${what.slice(0, 1024)}...` : what;
    this.sendFrame({ type: "goaway", reason, reconnect: false, lastRequestId: 0, message: text });
    this.said = { reason, message: text };
  }

  /**
   * The connection is over: requests still in flight fail (with `cancelled` if `error` says
   * so, otherwise `unavailable`, retryable only when the method is idempotent, since they may
   * have run), subscriptions go back to the client, the link closes.
   */
  private close(reason: string, error?: RpcError): void {
    if (this.phase === "closed") return;
    this.phase = "closed";
    if (this.keepalive !== undefined) clearInterval(this.keepalive);
    if (this.drainTimer !== undefined) clearTimeout(this.drainTimer);
    this.stopRefresh();
    const ops = [...this.table.values()];
    this.table.clear();
    this.counted = 0;
    for (const op of ops) {
      op.reject(
        error ??
          new RpcError(Code.UNAVAILABLE, `connection to ${this.endpoint} lost (${reason}); the request may have run`, {
            retryable: op.idempotent,
          }),
      );
    }
    this.detachSubscriptions();
    this.resolveDone({ kind: "lost", reason });
    if (this.link) {
      this.link.close(this.said);
      // The transport reports the close; do not wait for it forever.
      const timer = setTimeout(() => this.resolveClosed(), CLOSE_WAIT_MS);
      (timer as { unref?: () => void }).unref?.();
      void this.linkDown.then(() => {
        clearTimeout(timer);
        this.resolveClosed();
      });
    } else {
      this.resolveClosed();
    }
  }

  private startKeepalive(): void {
    const ours = this.host.options.keepaliveIntervalMs;
    // The protocol asks for a PING after half the server's idle timeout of silence.
    const theirs = this.welcome.idleTimeoutMs > 0 ? Math.max(1, this.welcome.idleTimeoutMs / 2) : 0;
    const period = ours > 0 && theirs > 0 ? Math.min(ours, theirs) : ours || theirs;
    if (period <= 0) return;
    this.keepalive = setInterval(() => {
      if (this.pinged && !this.heard) return this.close(`the gateway answered no ping for ${Math.round(period)} ms`);
      this.heard = false;
      this.pinged = true;
      this.sendFrame({ type: "ping", data: this.nextPing });
      this.nextPing += 1n;
    }, period);
  }

  /**
   * WELCOME or AUTH_OK said the credentials expire in `expiresInMs` (0: never). With a token
   * function, a refresh is scheduled at a random moment between 75 and 85 % of that time
   * (`docs/protocol.md`, "Authentication").
   */
  private setGrant(expiresInMs: number): void {
    this.stopRefresh();
    if (expiresInMs === 0 || !this.host.tokenProvider || this.phase !== "open") return;
    this.grant = { at: performance.now(), lifetime: expiresInMs };
    this.refreshAttempt = 1;
    this.scheduleRefresh(expiresInMs * (0.75 + 0.1 * Math.random()));
  }

  private scheduleRefresh(delayMs: number): void {
    this.refreshTimer = setTimeout(() => void this.refresh(), delayMs);
  }

  private stopRefresh(): void {
    if (this.refreshTimer !== undefined) clearTimeout(this.refreshTimer);
    this.refreshTimer = undefined;
  }

  private async refresh(): Promise<void> {
    this.refreshTimer = undefined;
    const provider = this.host.tokenProvider;
    const grant = this.grant;
    if (this.phase !== "open" || !provider || !grant) return;
    const timeoutMs = Math.min(this.host.options.defaultTimeoutMs, U32_MAX);
    try {
      const token = await withTimeout(provider(), timeoutMs, "the token function gave no token");
      if (typeof token !== "string") throw new Error(`the token function returned ${typeof token}, not a string`);
      if (this.phase !== "open") return;
      const now = performance.now();
      const op = new Op(this.host.owner, "auth", AUTH, utf8.encode(token), "", timeoutMs, undefined, now);
      this.send(op, now);
      // AUTH_OK reschedules the next refresh (`setGrant`).
      await op.promise;
      this.host.options.logger.debug?.(`${this.endpoint}: token refreshed`);
    } catch (e) {
      if (this.phase !== "open" || this.grant !== grant) return;
      this.host.options.logger.warn?.(`${this.endpoint}: token refresh ${this.refreshAttempt} failed: ${message(e)}`);
      const left = grant.at + grant.lifetime - performance.now();
      if (this.refreshAttempt >= REFRESH_ATTEMPTS || left <= 0) {
        // The gateway ends the connection at the expiry (GOAWAY token_expired); the client
        // then reconnects with a token from the function.
        return;
      }
      this.refreshAttempt += 1;
      this.scheduleRefresh(left / 2);
    }
  }

}

/** Why `op`'s frame cannot be sent, as the error its caller gets. */
function unsendable(name: string, endpoint: string, e: unknown): RpcError {
  if (e instanceof FrameEncodeError && e.kind === "too_large") {
    // The payload is too large for this gateway; sending it again will not help.
    return new RpcError(Code.RESOURCE_EXHAUSTED, `cannot send ${name} to ${endpoint}: ${e.message}`, { retryable: false });
  }
  return new RpcError(Code.INVALID_ARGUMENT, `cannot send ${name}: ${message(e)}`, { retryable: false });
}

export function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

function abortMessage(signal: AbortSignal): string {
  return signal.reason instanceof Error ? signal.reason.message : "the connection attempt was abandoned";
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what} ${within(ms)}`)), ms);
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(error instanceof Error ? error : new Error(String(error)));
      },
    );
  });
}

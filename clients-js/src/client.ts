/**
 * {@link Client}: calls, publications and subscriptions over one pipelined connection to a
 * gateway at a time, with deadlines, cancellation, reconnection and token refresh. It mirrors
 * the Rust client (`gateway/client`); `README.md` describes the behaviour for users.
 *
 * The client keeps what outlives a connection: requests waiting to be sent (for a connection,
 * or for room under the gateway's `max_in_flight`), first SUBSCRIBEs waiting for a connection,
 * the live subscriptions that each new connection restores, and the loop that connects and
 * reconnects. Each {@link Connection} keeps its own ids and frames.
 *
 * @module
 */

import { AUTH, type CallOptions, type GiveUp, type MethodDesc, Op, type OpKind, type OpOwner, type Target, type TopicDesc, within } from "./call.js";
import { AttemptError, Connection, type ConnectionHost, describeGoaway, message } from "./connection.js";
import { Deadlines } from "./deadlines.js";
import {
  Backoff,
  checkTimeout,
  type ClientOptions,
  type ConnectionState,
  OptionsError,
  type ResolvedOptions,
  resolveOptions,
} from "./options.js";
import { type GoawayFrame, GoawayReason, U32_MAX } from "./protocol/frame.js";
import { Code, RpcError } from "./status.js";
import { Feed, selectorFields, type Selector, type SubscribeOptions, type Subscription } from "./subscription.js";
import type { Transport } from "./transport.js";
import { webSocketTransport } from "./websocket.js";

const utf8 = new TextEncoder();

/**
 * A connection to a gateway that reconnects by itself. Generated clients (`rpcgen ts`) call
 * through it; it can also be used directly with method and topic descriptors.
 *
 * ```ts
 * const client = new Client({ endpoints: ["wss://gateway.example/rpc"], token: () => fetchToken() });
 * const reply = await client.call(SomeApi.methods.sum, requestBytes, { timeoutMs: 2000 });
 * ```
 *
 * Creating a client starts connecting at once; calls made before a connection is up wait for
 * it within their deadlines. {@link Client.connect} waits for the first connection instead.
 */
export class Client {
  readonly #o: ResolvedOptions;
  #state: ConnectionState = { status: "connecting", attempt: 1, lastError: undefined };
  readonly #listeners = new Set<(state: ConnectionState) => void>();
  /** The connection taking calls, if one is. */
  #conn: Connection | null = null;
  /** Every connection not yet closed: the current one and those draining after a GOAWAY. */
  readonly #connections = new Set<Connection>();
  /** Requests counted against `max_in_flight`, waiting to be sent, in call order. */
  readonly #waiting = new Set<Op>();
  /** AUTHs waiting for a connection (they do not count against `max_in_flight`). */
  readonly #waitingAuth = new Set<Op>();
  /** First SUBSCRIBEs waiting for a connection. */
  readonly #subscribing = new Set<Feed<unknown>>();
  /** Confirmed subscriptions: every new connection subscribes them again. */
  readonly #live = new Set<Feed<unknown>>();
  /** Set when the client will not connect again: what every later request fails with. */
  #stopped: RpcError | null = null;
  #closing: Promise<void> | null = null;
  /** Aborted when the client stops: ends backoff sleeps and connection attempts. */
  readonly #stop = new AbortController();
  readonly #backoff: Backoff;
  #nextEndpoint = 0;
  /** The token for HELLO without a token function: the option's, or the last refreshed one. */
  #token: string;
  /** {@link Client.connect}'s wait for the first connection. */
  #firstRound: { resolve(): void; reject(error: RpcError): void } | null = null;
  readonly #host: ConnectionHost;
  /** The deadlines of every request of this client, on one timer. */
  readonly #deadlines = new Deadlines();
  /** What each request reports to when its caller stops waiting. */
  readonly #owner: OpOwner;

  /**
   * Checks the options and starts connecting in the background.
   *
   * @throws {OptionsError} naming the option whose value cannot work.
   */
  constructor(options: ClientOptions) {
    this.#o = resolveOptions(options, defaultTransport);
    this.#backoff = new Backoff(this.#o.backoff);
    this.#token = typeof this.#o.token === "string" ? this.#o.token : "";
    const token = this.#o.token;
    this.#owner = { deadlines: this.#deadlines, giveUp: (op, why) => this.#giveUp(op, why) };
    this.#host = {
      options: this.#o,
      owner: this.#owner,
      pump: () => this.#pump(),
      confirmed: (feed) => {
        if (this.#stopped) return;
        this.#live.add(feed);
      },
      subscriptionEnded: (feed) => {
        this.#live.delete(feed);
      },
      resubscribe: (feed) => {
        if (!this.#stopped && feed.phase === "subscribing") this.#subscribing.add(feed);
      },
      tokenProvider: typeof token === "function" ? () => Promise.resolve(token()) : undefined,
    };
    if (this.#o.onStateChange) this.#listeners.add(this.#o.onStateChange);
    void this.#run();
  }

  /**
   * A client that is connected: it resolves once the first connection is up. Every endpoint is
   * tried once, in order.
   *
   * @throws {OptionsError} for options that cannot work.
   * @throws {RpcError} `unavailable` naming each endpoint and what failed there, when none
   *   completed the handshake; the gateway's refusal (`unauthenticated` for a refused token)
   *   when one refused the client for good. The client is closed then.
   */
  static async connect(options: ClientOptions): Promise<Client> {
    const client = new Client(options);
    if (client.#state.status === "connected") return client;
    await new Promise<void>((resolve, reject) => {
      client.#firstRound = { resolve, reject };
    });
    return client;
  }

  /** The connection's state now; see {@link Client.onStateChange}. */
  get state(): ConnectionState {
    return this.#state;
  }

  /**
   * Calls `listener` with every change of {@link Client.state} (for a UI's connection
   * indicator). Returns a function that removes it.
   */
  onStateChange(listener: (state: ConnectionState) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /**
   * Calls `method` with `request` (the request message's FlatBuffers bytes) and resolves with
   * the reply's bytes.
   *
   * Rejects with {@link RpcError}: the gateway's or the service's error; `deadline_exceeded`
   * when no reply came within the timeout; `unavailable` when no connection came up in time
   * (retryable), when the gateway went away before processing the request (retryable), or
   * when the connection was lost with the request in flight (retryable only for idempotent
   * methods: it may have run); `cancelled` when `options.signal` aborted (its reason is the
   * error's `cause`) or the client was closed; `resource_exhausted`, not retryable, for a
   * request larger than the gateway's maximum frame size.
   */
  call(method: MethodDesc, request: Uint8Array, options: CallOptions = {}): Promise<Uint8Array> {
    const problem = checkDesc("method", method) ?? checkBytes("request", request);
    if (problem) return Promise.reject(problem);
    // A call's promise resolves with the reply's bytes (`Op.promise`).
    return this.#request("call", method, request, "", options) as Promise<Uint8Array>;
  }

  /**
   * Calls `method` fire-and-forget (a `-> void` method): sends the request with the
   * `FIRE_AND_FORGET` flag and resolves once it is written to a connection. Nothing answers it,
   * not even an error: whether the service ran it is unknown. Rejects only when no connection
   * came up within the timeout (`unavailable`, retryable), when `options.signal` aborted first
   * (`cancelled`), or when the request is larger than the gateway's maximum frame size.
   */
  send(method: MethodDesc, request: Uint8Array, options: CallOptions = {}): Promise<void> {
    const problem = checkDesc("method", method) ?? checkBytes("request", request);
    if (problem) return Promise.reject(problem);
    // The other kinds resolve with `undefined`.
    return this.#request("send", method, request, "", options) as Promise<void>;
  }

  /**
   * Publishes `payload` (the topic message's FlatBuffers bytes) under `key` (empty for an
   * unkeyed topic) and resolves when the gateway has handed it to the bus. It shares the
   * request ids and the in-flight limit with calls; failures are those of {@link Client.call},
   * except that one lost with its connection is not retryable (the event may have been
   * published).
   */
  publish(topic: TopicDesc, key: string, payload: Uint8Array, options: CallOptions = {}): Promise<void> {
    const problem =
      checkDesc("topic", topic) ??
      (typeof key === "string" ? undefined : new TypeError(`a topic key is a string, not ${typeof key}`)) ??
      checkBytes("payload", payload);
    if (problem) return Promise.reject(problem);
    return this.#request("publish", topic, payload, key, options) as Promise<void>;
  }

  /**
   * Subscribes to `topic` and resolves when the gateway confirms it (SUBSCRIBED), with the
   * subscription to iterate; rejects with the gateway's refusal (SUBSCRIPTION_ENDED's code),
   * or as a call does when no connection or no answer came within the timeout.
   *
   * The subscription survives reconnections: each new connection subscribes it again, and the
   * first event after that has `resumed` set. It ends (see {@link Subscription.ended}) when the
   * gateway ends it, when a new gateway refuses it, when the client stops, or when the
   * application closes it.
   */
  subscribe<T>(topic: TopicDesc, selector: Selector, options: SubscribeOptions<T>): Promise<Subscription<T>> {
    const problem =
      checkDesc("topic", topic) ??
      (typeof options?.decode === "function" ? undefined : new TypeError("subscribe needs `options.decode`, a function"));
    if (problem) return Promise.reject(problem);
    let fields: { allKeys: boolean; key: string };
    let timeoutMs: number;
    let buffer: number;
    try {
      fields = selectorFields(topic, selector);
      timeoutMs = options.timeoutMs === undefined ? this.#o.defaultTimeoutMs : checkTimeout("timeoutMs", options.timeoutMs);
      buffer = options.bufferSize ?? this.#o.subscriptionBuffer;
      if (!Number.isInteger(buffer) || buffer < 1) throw new OptionsError("bufferSize", buffer, "must be a whole number above 0");
    } catch (e) {
      return Promise.reject(e);
    }
    if (this.#stopped) return Promise.reject(this.#stoppedError());
    if (options.signal?.aborted) return Promise.reject(cancelled(`subscribing to ${topic.name}`, options.signal));
    const feed = new Feed<T>(topic, fields.allKeys, fields.key, buffer, timeoutMs, options, {
      deadlines: this.#deadlines,
      closed: (f) => this.#feedClosed(f),
      giveUp: (f, why) => this.#feedGiveUp(f, why),
    });
    this.#subscribing.add(feed as Feed<unknown>);
    this.#pump();
    return feed.subscribed;
  }

  /**
   * Presents a fresh token on the current connection (AUTH), waiting for a connection like a
   * call does, within the default timeout. Once accepted, later connections present it in
   * HELLO too, unless the client has a token function (which is asked instead).
   *
   * @throws {RpcError} the gateway's refusal (`unauthenticated`; the connection keeps its
   *   previous credentials), or as a call fails.
   */
  async refreshToken(token: string): Promise<void> {
    if (typeof token !== "string") throw new TypeError(`a token is a string, not ${typeof token}`);
    await this.#request("auth", AUTH, utf8.encode(token), "", {});
    if (typeof this.#o.token !== "function") this.#token = token;
  }

  /**
   * Closes the client: requests waiting or in flight fail with `cancelled`, subscriptions end
   * with `cancelled`, the gateway is told with a GOAWAY, and later requests fail at once.
   * Resolves when the connections are closed.
   */
  close(): Promise<void> {
    if (!this.#closing) {
      this.#halt(new RpcError(Code.CANCELLED, "the client was closed", { retryable: false }), undefined);
      this.#closing = Promise.all([...this.#connections].map((conn) => conn.shutdown())).then(() => undefined);
    }
    return this.#closing;
  }

  /**
   * Closes the client once the requests in flight are answered (`docs/protocol.md`,
   * "Closing"): later requests, and those still waiting in the client's queue, fail with
   * `cancelled`; subscriptions end with `cancelled`; the gateway is told with GOAWAY `done` and
   * answers the requests it has, each within its deadline; then the connection closes. Resolves
   * when it is closed. After `close()`, it is `close()`'s promise.
   */
  finish(): Promise<void> {
    if (!this.#closing) {
      this.#halt(new RpcError(Code.CANCELLED, "the client finished", { retryable: false }), undefined);
      this.#closing = Promise.all([...this.#connections].map((conn) => conn.finish())).then(() => undefined);
    }
    return this.#closing;
  }

  /**
   * Makes a request and sends it at once when the connection has room and nothing waits before
   * it; otherwise it waits in the client's queue.
   */
  #request(kind: OpKind, target: Target, payload: Uint8Array, key: string, options: CallOptions): Promise<Uint8Array | undefined> {
    let timeoutMs = options.timeoutMs;
    if (timeoutMs === undefined) {
      timeoutMs = this.#o.defaultTimeoutMs;
    } else {
      try {
        timeoutMs = checkTimeout("timeoutMs", timeoutMs);
      } catch (e) {
        return Promise.reject(e);
      }
    }
    if (this.#stopped) return Promise.reject(this.#stoppedError());
    const signal = options.signal;
    if (signal?.aborted) return Promise.reject(cancelled(target.name, signal));
    const now = performance.now();
    const op = new Op(this.#owner, kind, target, payload, key, timeoutMs, signal, now);
    const conn = this.#conn;
    if (kind === "auth") {
      if (conn !== null && conn.phase === "open") conn.send(op, now);
      else this.#waitingAuth.add(op);
    } else if (conn !== null && this.#waiting.size === 0 && conn.hasRoom()) {
      conn.send(op, now);
    } else {
      this.#waiting.add(op);
      this.#pump();
    }
    return op.promise;
  }

  /** Sends what waits, as far as the current connection has room. */
  #pump(): void {
    const conn = this.#conn;
    if (conn === null || conn.phase !== "open") return;
    if (this.#waitingAuth.size + this.#subscribing.size + this.#waiting.size === 0) return;
    const now = performance.now();
    for (const op of this.#waitingAuth) {
      this.#waitingAuth.delete(op);
      conn.send(op, now);
    }
    for (const feed of this.#subscribing) {
      this.#subscribing.delete(feed);
      conn.subscribe(feed);
    }
    while (this.#waiting.size > 0 && conn.hasRoom()) {
      const op = this.#waiting.values().next().value as Op;
      this.#waiting.delete(op);
      conn.send(op, now);
    }
  }

  /** A request's deadline passed or its signal aborted before an answer. */
  #giveUp(op: Op, why: GiveUp): void {
    if (op.carrier === null) {
      this.#waiting.delete(op);
      this.#waitingAuth.delete(op);
    } else {
      op.carrier.cancel(op);
    }
    if (why === "abort") return op.reject(cancelled(op.name, op.signal));
    if (op.carrier === null && this.#conn === null) return op.reject(this.#noConnection(op.timeoutMs));
    op.reject(new RpcError(Code.DEADLINE_EXCEEDED, `${op.name} did not answer ${within(op.timeoutMs)}`));
  }

  #feedClosed(feed: Feed<unknown>): void {
    this.#live.delete(feed);
    this.#subscribing.delete(feed);
    if (feed.conn) feed.conn.unsubscribe(feed);
  }

  #feedGiveUp(feed: Feed<unknown>, why: GiveUp): void {
    const connected = this.#conn !== null;
    const sent = feed.conn !== null;
    this.#subscribing.delete(feed);
    if (feed.conn) feed.conn.unsubscribe(feed);
    const what = `subscribing to ${feed.topic.name}`;
    if (why === "abort") return feed.refuse(cancelled(what, feed.signal));
    if (!sent && !connected) return feed.refuse(this.#noConnection(feed.timeoutMs));
    feed.refuse(new RpcError(Code.DEADLINE_EXCEEDED, `${what} got no answer ${within(feed.timeoutMs)}`));
  }

  #noConnection(timeoutMs: number): RpcError {
    const state = this.#state;
    const last = state.status === "connecting" && state.lastError ? ` (last error: ${state.lastError})` : "";
    return new RpcError(Code.UNAVAILABLE, `no connection to a gateway ${within(timeoutMs)}${last}`, { retryable: true });
  }

  #stoppedError(): RpcError {
    const e = this.#stopped!;
    return new RpcError(e.code, e.text, { retryable: e.retryable });
  }

  #setState(state: ConnectionState): void {
    const now = this.#state;
    if (
      state.status === "connecting" &&
      now.status === "connecting" &&
      now.attempt === state.attempt &&
      now.lastError === state.lastError
    ) {
      return;
    }
    this.#state = state;
    for (const listener of [...this.#listeners]) {
      try {
        listener(state);
      } catch (e) {
        this.#o.logger.warn?.(`a state listener threw: ${message(e)}`);
      }
    }
  }

  /**
   * The client will not connect again: waiting requests and subscriptions fail with `error`,
   * live subscriptions end with it. Requests in flight on a draining connection still get
   * their answers (`close()` cancels those too).
   */
  #halt(error: RpcError, shown: RpcError | undefined): void {
    if (this.#stopped) return;
    this.#stopped = error;
    this.#stop.abort(new Error(error.text));
    this.#conn = null;
    const copy = () => new RpcError(error.code, error.text, { retryable: error.retryable });
    for (const op of [...this.#waiting, ...this.#waitingAuth]) op.reject(copy());
    this.#waiting.clear();
    this.#waitingAuth.clear();
    for (const feed of this.#subscribing) feed.refuse(copy());
    this.#subscribing.clear();
    for (const feed of this.#live) feed.end(copy());
    this.#live.clear();
    this.#setState({ status: "closed", error: shown });
    this.#firstRound?.reject(copy());
    this.#firstRound = null;
  }

  /** Connects, and reconnects whenever the connection ends, until the client stops. */
  async #run(): Promise<void> {
    const endpoints = this.#o.endpoints;
    let attempt = 0;
    let everConnected = false;
    let lastError: string | undefined;
    const firstRound: string[] = [];
    while (!this.#stopped) {
      const index = this.#nextEndpoint;
      this.#nextEndpoint = (index + 1) % endpoints.length;
      const endpoint = endpoints[index]!;
      // The first round tries every endpoint at once; after that every attempt waits its delay.
      if (everConnected || attempt >= endpoints.length) {
        await this.#sleep(this.#backoff.next());
        if (this.#stopped) return;
      }
      attempt += 1;
      this.#setState({ status: "connecting", attempt, lastError });
      let conn: Connection;
      try {
        conn = await this.#attempt(endpoint);
      } catch (e) {
        if (this.#stopped) return;
        const goaway = e instanceof AttemptError ? e.goaway : undefined;
        if (goaway && !goaway.reconnect) {
          const error = refused(endpoint.text, goaway);
          return this.#halt(error, error);
        }
        lastError = `${endpoint.text}: ${message(e)}`;
        this.#o.logger.warn?.(`connection attempt failed: ${lastError}`);
        this.#setState({ status: "connecting", attempt, lastError });
        if (!everConnected) {
          firstRound.push(`\`${endpoint.text}\`: ${message(e)}`);
          if (firstRound.length === endpoints.length && this.#firstRound) {
            const error = new RpcError(Code.UNAVAILABLE, `no gateway reachable: ${firstRound.join("; ")}`, { retryable: true });
            this.#firstRound.reject(error);
            this.#firstRound = null;
            void this.close();
            return;
          }
        }
        continue;
      }
      if (this.#stopped) {
        await conn.shutdown();
        return;
      }
      everConnected = true;
      attempt = 0;
      this.#backoff.reset();
      this.#nextEndpoint = (index + 1) % endpoints.length;
      this.#adopt(conn);
      const end = await conn.done;
      if (this.#conn === conn) this.#conn = null;
      if (this.#stopped) return;
      if (end.kind === "goaway" && !end.goaway.reconnect) {
        const error = refused(endpoint.text, end.goaway);
        return this.#halt(error, error);
      }
      lastError =
        end.kind === "goaway"
          ? `gateway ${endpoint.text} went away (${describeGoaway(end.goaway)})`
          : `connection to ${endpoint.text} lost: ${end.reason}`;
      this.#o.logger.warn?.(`reconnecting: ${lastError}`);
      this.#setState({ status: "connecting", attempt: 1, lastError });
    }
  }

  /** One connection attempt, bounded by the connect timeout: a token, then the handshake. */
  async #attempt(endpoint: { text: string; url: URL }): Promise<Connection> {
    const controller = new AbortController();
    const timeout = this.#o.connectTimeoutMs;
    const timer = setTimeout(
      () => controller.abort(new Error(`no WELCOME ${within(timeout)} (the connect timeout)`)),
      timeout,
    );
    const stop = () => controller.abort(new Error("the client was closed"));
    this.#stop.signal.addEventListener("abort", stop, { once: true });
    try {
      const token = await this.#helloToken(controller.signal);
      return await Connection.open(this.#host, endpoint.text, endpoint.url, token, controller.signal);
    } finally {
      clearTimeout(timer);
      this.#stop.signal.removeEventListener("abort", stop);
    }
  }

  /** The token for HELLO: the token function's (asked now), or the current one. */
  async #helloToken(signal: AbortSignal): Promise<string> {
    const source = this.#o.token;
    if (typeof source !== "function") return this.#token;
    let token: unknown;
    try {
      token = await Promise.race([
        Promise.resolve().then(source),
        new Promise<never>((_, reject) =>
          signal.addEventListener("abort", () => reject(signal.reason instanceof Error ? signal.reason : new Error("abandoned")), {
            once: true,
          }),
        ),
      ]);
    } catch (e) {
      throw new AttemptError(signal.aborted ? message(e) : `the token function failed: ${message(e)}`);
    }
    if (typeof token !== "string") throw new AttemptError(`the token function returned ${typeof token}, not a string`);
    return token;
  }

  /** A new connection takes calls: it restores the live subscriptions and sends what waits. */
  #adopt(conn: Connection): void {
    this.#connections.add(conn);
    void conn.closed.then(() => this.#connections.delete(conn));
    this.#conn = conn;
    // Frames that came with WELCOME (a GOAWAY) may have ended it already; `done` says so next.
    if (conn.phase !== "open") return;
    for (const feed of this.#live) {
      feed.markResumed();
      conn.subscribe(feed);
    }
    this.#setState({ status: "connected", endpoint: conn.endpoint, serverId: conn.welcome.serverId });
    this.#firstRound?.resolve();
    this.#firstRound = null;
    this.#pump();
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const signal = this.#stop.signal;
      const done = () => {
        clearTimeout(timer);
        signal.removeEventListener("abort", done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      signal.addEventListener("abort", done, { once: true });
    });
  }
}

function defaultTransport(): Transport {
  return webSocketTransport();
}

/** The status of everything after a gateway closed the connection without the reconnect flag. */
function refused(endpoint: string, goaway: GoawayFrame): RpcError {
  const code = goaway.reason === GoawayReason.UNAUTHENTICATED ? Code.UNAUTHENTICATED : Code.UNAVAILABLE;
  return new RpcError(
    code,
    `gateway ${endpoint} closed the connection for good (${describeGoaway(goaway)}); the client does not reconnect`,
    { retryable: false },
  );
}

function cancelled(what: string, signal: AbortSignal | undefined): RpcError {
  return new RpcError(Code.CANCELLED, `${what} was cancelled`, { retryable: false, cause: signal?.reason });
}

function checkDesc(what: "method" | "topic", desc: MethodDesc | TopicDesc): TypeError | undefined {
  if (typeof desc !== "object" || desc === null) return new TypeError(`a ${what} descriptor is an object, not ${String(desc)}`);
  if (!Number.isInteger(desc.id) || desc.id < 0 || desc.id > U32_MAX) {
    return new TypeError(`${what} ${String(desc.name)}: its id ${String(desc.id)} is not a u32`);
  }
  if (typeof desc.name !== "string") return new TypeError(`a ${what} descriptor has a string \`name\``);
  return undefined;
}

function checkBytes(what: string, bytes: Uint8Array): TypeError | undefined {
  return bytes instanceof Uint8Array ? undefined : new TypeError(`the ${what} is a Uint8Array (FlatBuffers bytes), not ${typeof bytes}`);
}


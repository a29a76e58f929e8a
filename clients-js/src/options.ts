/**
 * {@link ClientOptions}: where the gateways are, how long to wait, how to reconnect; their
 * defaults, and their validation ({@link resolveOptions}), which names the option and the value
 * that cannot work.
 *
 * @module
 */

import { DEFAULT_MAX_FRAME_SIZE, MIN_MAX_FRAME_SIZE, U32_MAX } from "./protocol/frame.js";
import type { RpcError } from "./status.js";
import type { Transport } from "./transport.js";

/**
 * Credentials for HELLO and AUTH: a JWT, or a function that returns a fresh one. A function is
 * asked before every connection attempt and again before the current token expires (the
 * client then presents the new one with AUTH); a string is presented as it is, and refreshed
 * only by {@link Client.refreshToken}.
 */
export type TokenSource = string | (() => string | Promise<string>);

/** Exponential backoff with full jitter between reconnection attempts. */
export interface BackoffOptions {
  /** The bound of the first delay, in ms. Default: 50. */
  initialMs?: number;
  /** The bound no delay exceeds, in ms. Default: 5000. */
  maxMs?: number;
  /** How much the bound grows per failed attempt, at least 1. Default: 2. */
  factor?: number;
}

/** What a UI can show of the client's connection; see {@link Client.state}. */
export type ConnectionState =
  | {
      readonly status: "connecting";
      /** Attempts since the last connection was established (1 for the first). */
      readonly attempt: number;
      /** Why the last connection or attempt ended, if one did. */
      readonly lastError: string | undefined;
    }
  | {
      readonly status: "connected";
      /** The endpoint, as given in {@link ClientOptions.endpoints}. */
      readonly endpoint: string;
      /** The gateway's name, from its WELCOME. */
      readonly serverId: string;
    }
  | {
      readonly status: "closed";
      /** Why the client stopped; `undefined` when the application closed it. */
      readonly error: RpcError | undefined;
    };

/** Where the client reports what it does not throw (a refresh that failed, a skipped frame). */
export interface Logger {
  warn?(message: string): void;
  debug?(message: string): void;
}

/** How a {@link Client} connects and calls. Only `endpoints` is required. */
export interface ClientOptions {
  /**
   * The gateways, tried in order, then round again: `ws://host:port/path`, `wss://...`, or
   * `tcp://host:port` and `tls://host:port` (Node only). At least one.
   */
  endpoints: readonly string[];
  /**
   * How to open connections. Default: the browser's `WebSocket` (`ws://` and `wss://` only). In
   * Node, pass `nodeTransport` from `@rpcgen/client/node` (TCP, TLS, and WebSocket through `ws`),
   * or `nodeTransportWith({ ca })` to trust CA certificates of your own.
   */
  transport?: Transport;
  /** Credentials; see {@link TokenSource}. Default: none (an anonymous connection). */
  token?: TokenSource;
  /** A name for the gateway's logs, at most 255 bytes. Default: `"@rpcgen/client"`. */
  name?: string;
  /** The deadline of calls, publications and subscriptions that set none. Default: 10,000 ms. */
  defaultTimeoutMs?: number;
  /** How long one connection attempt may take, from asking for a token to WELCOME. Default: 5,000 ms. */
  connectTimeoutMs?: number;
  /** The largest frame the client accepts, sent in HELLO; at least 65,536. Default: 16 MiB. */
  maxFrameSize?: number;
  /** Reconnection delays. */
  backoff?: BackoffOptions;
  /**
   * How often to PING; a gateway that answers nothing for two intervals is a lost connection.
   * The client pings more often when the gateway's idle timeout demands it. `0` turns pings off
   * (except those the idle timeout needs). Default: 15,000 ms.
   */
  keepaliveIntervalMs?: number;
  /**
   * Events each subscription holds for an application that has not read them; past it the
   * oldest is dropped and counted in the next event's `missed`. Default: 1024.
   */
  subscriptionBuffer?: number;
  /** Called with every change of {@link Client.state}. */
  onStateChange?: (state: ConnectionState) => void;
  /** Where warnings go. Default: nowhere. */
  logger?: Logger;
}

/** An option with a value that cannot work. */
export class OptionsError extends TypeError {
  /** The option, as named in {@link ClientOptions} (`"backoff.maxMs"`). */
  readonly option: string;

  constructor(option: string, value: unknown, problem: string) {
    super(`invalid option \`${option}\` (${show(value)}): ${problem}`);
    this.name = "OptionsError";
    this.option = option;
  }
}

function show(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value);
  if (typeof value === "function") return "a function";
  if (Array.isArray(value)) return `[${value.map(show).join(", ")}]`;
  return String(value);
}

/** The options with every default filled in, checked. */
export interface ResolvedOptions {
  readonly endpoints: readonly { readonly text: string; readonly url: URL }[];
  readonly transport: Transport;
  readonly token: TokenSource | undefined;
  readonly name: string;
  readonly defaultTimeoutMs: number;
  readonly connectTimeoutMs: number;
  readonly maxFrameSize: number;
  readonly backoff: Required<BackoffOptions>;
  readonly keepaliveIntervalMs: number;
  readonly subscriptionBuffer: number;
  readonly onStateChange: ((state: ConnectionState) => void) | undefined;
  readonly logger: Logger;
}

const utf8 = new TextEncoder();

/** A timeout in ms: positive, at most the protocol's `u32` (about 49.7 days), or `Infinity` for none. */
export function checkTimeout(option: string, value: unknown): number {
  if (value === Infinity) return value;
  if (typeof value !== "number" || !(value > 0) || value > U32_MAX) {
    throw new OptionsError(option, value, `a timeout is a number of ms above 0 and at most ${U32_MAX}, or Infinity`);
  }
  return value;
}

function positive(option: string, value: unknown, fallback: number, integer = false): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || !Number.isFinite(value) || value <= 0 || (integer && !Number.isInteger(value))) {
    throw new OptionsError(option, value, `must be a ${integer ? "whole " : ""}number above 0`);
  }
  return value;
}

/**
 * Fills in the defaults and checks every option.
 *
 * @throws {OptionsError} naming the first option whose value cannot work.
 */
export function resolveOptions(options: ClientOptions, defaultTransport: () => Transport): ResolvedOptions {
  if (typeof options !== "object" || options === null) {
    throw new OptionsError("options", options, "pass an object with at least `endpoints`");
  }
  const transport = options.transport ?? defaultTransport();
  if (typeof transport?.open !== "function" || !Array.isArray(transport.schemes)) {
    throw new OptionsError("transport", transport, "a Transport has `schemes` and `open()`");
  }
  const list: unknown = options.endpoints;
  if (!Array.isArray(list) || list.length === 0) {
    throw new OptionsError("endpoints", list, "give at least one endpoint, such as \"ws://127.0.0.1:7402\"");
  }
  const endpoints = list.map((text: unknown) => {
    if (typeof text !== "string") throw new OptionsError("endpoints", text, "an endpoint is a URL string");
    let url: URL;
    try {
      url = new URL(text);
    } catch {
      throw new OptionsError("endpoints", text, "not a URL (ws://host:port/path, wss://..., tcp://host:port, tls://...)");
    }
    const stream = url.protocol === "tcp:" || url.protocol === "tls:";
    if (!["ws:", "wss:", "tcp:", "tls:"].includes(url.protocol)) {
      throw new OptionsError("endpoints", text, "the scheme must be ws://, wss://, tcp:// or tls://");
    }
    if (url.hostname === "" || (stream && url.port === "")) {
      throw new OptionsError("endpoints", text, `a ${url.protocol}// endpoint is ${url.protocol}//host:port`);
    }
    if (!transport.schemes.includes(url.protocol)) {
      const hint =
        stream
          ? "; in Node, pass `transport: nodeTransport` from \"@rpcgen/client/node\""
          : "";
      throw new OptionsError(
        "endpoints",
        text,
        `the transport speaks ${transport.schemes.join(", ") || "no scheme"}, not ${url.protocol}${hint}`,
      );
    }
    return { text, url };
  });
  const token = options.token;
  if (token !== undefined && typeof token !== "string" && typeof token !== "function") {
    throw new OptionsError("token", token, "a token is a string (a JWT) or a function returning one");
  }
  if (typeof token === "string" && utf8.encode(token).length > 0xffff) {
    throw new OptionsError("token", `${token.slice(0, 16)}...`, "a token is at most 65535 bytes");
  }
  const name = options.name ?? "@rpcgen/client";
  if (typeof name !== "string" || utf8.encode(name).length > 255) {
    throw new OptionsError("name", name, "a name is a string of at most 255 bytes");
  }
  const defaultTimeoutMs =
    options.defaultTimeoutMs === undefined ? 10_000 : checkTimeout("defaultTimeoutMs", options.defaultTimeoutMs);
  const connectTimeoutMs = positive("connectTimeoutMs", options.connectTimeoutMs, 5_000);
  const maxFrameSize = options.maxFrameSize ?? DEFAULT_MAX_FRAME_SIZE;
  if (!Number.isInteger(maxFrameSize) || maxFrameSize < MIN_MAX_FRAME_SIZE || maxFrameSize > U32_MAX) {
    throw new OptionsError("maxFrameSize", maxFrameSize, `must be a whole number from ${MIN_MAX_FRAME_SIZE} to ${U32_MAX}`);
  }
  const b = options.backoff ?? {};
  const backoff = {
    initialMs: positive("backoff.initialMs", b.initialMs, 50),
    maxMs: positive("backoff.maxMs", b.maxMs, 5_000),
    factor: b.factor ?? 2,
  };
  if (backoff.maxMs < backoff.initialMs) {
    throw new OptionsError("backoff.maxMs", backoff.maxMs, `must not be less than \`backoff.initialMs\` (${backoff.initialMs})`);
  }
  if (typeof backoff.factor !== "number" || !Number.isFinite(backoff.factor) || backoff.factor < 1) {
    throw new OptionsError("backoff.factor", backoff.factor, "must be a finite number of at least 1");
  }
  const keepalive = options.keepaliveIntervalMs ?? 15_000;
  if (typeof keepalive !== "number" || !Number.isFinite(keepalive) || keepalive < 0) {
    throw new OptionsError("keepaliveIntervalMs", keepalive, "must be a number of ms, or 0 for no pings");
  }
  const subscriptionBuffer = positive("subscriptionBuffer", options.subscriptionBuffer, 1024, true);
  if (options.onStateChange !== undefined && typeof options.onStateChange !== "function") {
    throw new OptionsError("onStateChange", options.onStateChange, "must be a function");
  }
  return {
    endpoints,
    transport,
    token,
    name,
    defaultTimeoutMs,
    connectTimeoutMs,
    maxFrameSize,
    backoff,
    keepaliveIntervalMs: keepalive,
    subscriptionBuffer,
    onStateChange: options.onStateChange,
    logger: options.logger ?? {},
  };
}

/** The delays of one series of failed attempts: `random × min(max, initial × factor^n)`. */
export class Backoff {
  private attempt = 0;

  constructor(
    private readonly policy: Required<BackoffOptions>,
    private readonly random: () => number = Math.random,
  ) {}

  /** The bound of the next delay. */
  bound(): number {
    return Math.min(this.policy.maxMs, this.policy.initialMs * this.policy.factor ** this.attempt);
  }

  /** The delay before the next attempt, uniformly random in `[0, bound]`. */
  next(): number {
    const delay = this.bound() * this.random();
    this.attempt += 1;
    return delay;
  }

  /** A connection was established: the next delay is bounded by `initialMs` again. */
  reset(): void {
    this.attempt = 0;
  }
}

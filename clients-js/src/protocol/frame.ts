/**
 * The frames of protocol version 1 as values (`docs/protocol.md`, "Frames").
 *
 * A frame is an object whose `type` names it as the test vectors do (`"subscription_ended"`)
 * and whose fields are the wire fields in camelCase, flag bits as booleans. Integers are
 * numbers, except PING and PONG's `data`, a `u64`, which is a `bigint`. Payloads, tokens and
 * details are `Uint8Array`s; decoded ones are views of the received bytes, not copies.
 *
 * @module
 */

/** The protocol version this client speaks. */
export const VERSION = 1;

/** The four bytes every HELLO starts with: `"FBRP"`. */
export const MAGIC: readonly number[] = [0x46, 0x42, 0x52, 0x50];

/** The maximum frame size a peer states by default: 16 MiB. */
export const DEFAULT_MAX_FRAME_SIZE = 16 * 1024 * 1024;

/** The smallest maximum frame size a peer may state, and the limit before the peer's is known. */
export const MIN_MAX_FRAME_SIZE = 64 * 1024;

/** The largest value of a `u32` field (ids, timeouts, frame sizes). */
export const U32_MAX = 0xffff_ffff;

/** Flag bit 7, on every type: a receiver that does not know the type skips the frame. */
export const FLAG_IGNORABLE = 0x80;

/** The frame type numbers of version 1. */
export const FrameType = {
  HELLO: 0x01,
  WELCOME: 0x02,
  PING: 0x03,
  PONG: 0x04,
  GOAWAY: 0x05,
  REQUEST: 0x10,
  RESPONSE: 0x11,
  ERROR: 0x12,
  CANCEL: 0x13,
  SUBSCRIBE: 0x20,
  UNSUBSCRIBE: 0x21,
  PUBLISH: 0x22,
  SUBSCRIBED: 0x23,
  EVENT: 0x24,
  MISSED: 0x25,
  SUBSCRIPTION_ENDED: 0x26,
  SUBSCRIBE_FROM: 0x27,
  SUBSCRIBED_AT: 0x28,
  EVENT_AT: 0x29,
  AUTH: 0x30,
  AUTH_OK: 0x31,
} as const;

/** The GOAWAY reasons of version 1 (`docs/protocol.md`, "GOAWAY reasons"). */
/**
 * HELLO and WELCOME capability bit 0: the peer speaks stream positions (SUBSCRIBE_FROM,
 * SUBSCRIBED_AT, EVENT_AT; `docs/protocol.md`, "History and recovery").
 */
export const CAPABILITY_HISTORY = 0x01;

/** SUBSCRIBED_AT's `recovery` values. A number not listed here is not a recovery. */
export const Recovery = {
  NONE: 0,
  RECOVERED: 1,
  EPOCH_CHANGED: 2,
  TOO_OLD: 3,
  TOO_MANY: 4,
  AHEAD: 5,
  UNAVAILABLE: 6,
} as const;

const RECOVERY_NAMES: readonly string[] = [
  "none",
  "recovered",
  "epoch_changed",
  "too_old",
  "too_many",
  "ahead",
  "unavailable",
];

/** The spec's name of a `recovery` value (`"too_old"`), or `recovery N` for one it does not name. */
export function recoveryName(recovery: number): string {
  return RECOVERY_NAMES[recovery] ?? `recovery ${recovery}`;
}

export const GoawayReason = {
  SHUTTING_DOWN: 1,
  IDLE_TIMEOUT: 2,
  HANDSHAKE_TIMEOUT: 3,
  PROTOCOL_ERROR: 4,
  FRAME_TOO_LARGE: 5,
  UNSUPPORTED_VERSION: 6,
  UNAUTHENTICATED: 7,
  TOKEN_EXPIRED: 8,
  SLOW_CONSUMER: 9,
  TOO_MANY_CONNECTIONS: 10,
  POLICY: 11,
  /** From a client: it sent its last request; the server answers those in flight, then closes. */
  DONE: 12,
} as const;

const REASON_NAMES: readonly string[] = [
  "",
  "shutting_down",
  "idle_timeout",
  "handshake_timeout",
  "protocol_error",
  "frame_too_large",
  "unsupported_version",
  "unauthenticated",
  "token_expired",
  "slow_consumer",
  "too_many_connections",
  "policy",
  "done",
];

/** A GOAWAY reason's name (`"shutting_down"`), or `"reason N"` for one version 1 does not define. */
export function goawayReasonName(reason: number): string {
  return reason >= 1 && reason < REASON_NAMES.length ? REASON_NAMES[reason]! : `reason ${reason}`;
}

export interface HelloFrame {
  readonly type: "hello";
  /** The highest protocol version the client speaks. */
  readonly version: number;
  /** The largest frame the client accepts, at least 65,536. */
  readonly maxFrameSize: number;
  /** For the server's logs; empty = none. */
  readonly clientName: string;
  /** Credentials (a JWT's UTF-8 bytes); empty = none. */
  readonly token: Uint8Array;
  /** What the client speaks beyond version 1 ({@link CAPABILITY_HISTORY}); absent is 0. */
  readonly capabilities?: number;
}

export interface WelcomeFrame {
  readonly type: "welcome";
  /** The version the connection speaks from now on. */
  readonly version: number;
  /** The largest frame the server accepts. */
  readonly maxFrameSize: number;
  /** Requests the client may have in flight. */
  readonly maxInFlight: number;
  /** The server's idle timeout; 0 = none. */
  readonly idleTimeoutMs: number;
  readonly serverId: string;
  /** Milliseconds until the credentials expire, from the receipt of WELCOME; 0 = never. */
  readonly authExpiresInMs: number;
  /** What the server speaks beyond version 1 ({@link CAPABILITY_HISTORY}); absent is 0. */
  readonly capabilities?: number;
}

export interface PingFrame {
  readonly type: "ping";
  readonly data: bigint;
}

export interface PongFrame {
  readonly type: "pong";
  readonly data: bigint;
}

export interface GoawayFrame {
  readonly type: "goaway";
  /** See {@link GoawayReason}; numbers this version does not define are kept. */
  readonly reason: number;
  /** Whether reconnecting can help. */
  readonly reconnect: boolean;
  /** The last request the server will still answer; 0 = none. */
  readonly lastRequestId: number;
  readonly message: string;
}

export interface RequestFrame {
  readonly type: "request";
  readonly requestId: number;
  readonly methodId: number;
  /** Deadline relative to the server's receipt; 0 = none. */
  readonly timeoutMs: number;
  readonly fireAndForget: boolean;
  readonly payload: Uint8Array;
}

export interface ResponseFrame {
  readonly type: "response";
  readonly requestId: number;
  readonly payload: Uint8Array;
}

export interface ErrorFrame {
  readonly type: "error";
  readonly requestId: number;
  /** A status code, 1 to 16; a received 0 or unknown number decodes as 2 (`unknown`). */
  readonly code: number;
  readonly retryable: boolean;
  /** The application error declared in the service file; 0 = none. */
  readonly errorId: number;
  readonly message: string;
  readonly details: Uint8Array;
}

export interface CancelFrame {
  readonly type: "cancel";
  readonly requestId: number;
}

export interface SubscribeFrame {
  readonly type: "subscribe";
  readonly subscriptionId: number;
  readonly topicId: number;
  readonly allKeys: boolean;
  readonly key: string;
}

export interface UnsubscribeFrame {
  readonly type: "unsubscribe";
  readonly subscriptionId: number;
}

export interface PublishFrame {
  readonly type: "publish";
  /** 0 = no answer wanted. */
  readonly requestId: number;
  readonly topicId: number;
  readonly key: string;
  readonly payload: Uint8Array;
}

export interface SubscribedFrame {
  readonly type: "subscribed";
  readonly subscriptionId: number;
}

export interface EventFrame {
  readonly type: "event";
  readonly subscriptionId: number;
  readonly key: string;
  readonly payload: Uint8Array;
}

export interface SubscribeFromFrame {
  readonly type: "subscribe_from";
  readonly subscriptionId: number;
  readonly topicId: number;
  readonly allKeys: boolean;
  readonly key: string;
  /** The position to recover after: the history's epoch and the last offset received. */
  readonly epoch: bigint;
  readonly offset: bigint;
}

export interface SubscribedAtFrame {
  readonly type: "subscribed_at";
  readonly subscriptionId: number;
  /** A {@link Recovery} value. */
  readonly recovery: number;
  /** The events that follow have offsets after this position. */
  readonly epoch: bigint;
  readonly offset: bigint;
}

export interface EventAtFrame {
  readonly type: "event_at";
  readonly subscriptionId: number;
  readonly offset: bigint;
  readonly key: string;
  readonly payload: Uint8Array;
}

export interface MissedFrame {
  readonly type: "missed";
  readonly subscriptionId: number;
  readonly count: number;
}

export interface SubscriptionEndedFrame {
  readonly type: "subscription_ended";
  readonly subscriptionId: number;
  readonly code: number;
  readonly retryable: boolean;
  readonly message: string;
}

export interface AuthFrame {
  readonly type: "auth";
  readonly requestId: number;
  readonly token: Uint8Array;
}

export interface AuthOkFrame {
  readonly type: "auth_ok";
  readonly requestId: number;
  /** Milliseconds until the new credentials expire; 0 = never. */
  readonly expiresInMs: number;
}

/** Any frame of version 1. */
export type Frame =
  | HelloFrame
  | WelcomeFrame
  | PingFrame
  | PongFrame
  | GoawayFrame
  | RequestFrame
  | ResponseFrame
  | ErrorFrame
  | CancelFrame
  | SubscribeFrame
  | UnsubscribeFrame
  | PublishFrame
  | SubscribedFrame
  | EventFrame
  | MissedFrame
  | SubscribeFromFrame
  | SubscribedAtFrame
  | EventAtFrame
  | SubscriptionEndedFrame
  | AuthFrame
  | AuthOkFrame;

/** The frame types by their names. */
export type FrameName = Frame["type"];

/** The wire number of each frame name. */
export const FRAME_NUMBERS: { readonly [N in FrameName]: number } = {
  hello: FrameType.HELLO,
  welcome: FrameType.WELCOME,
  ping: FrameType.PING,
  pong: FrameType.PONG,
  goaway: FrameType.GOAWAY,
  request: FrameType.REQUEST,
  response: FrameType.RESPONSE,
  error: FrameType.ERROR,
  cancel: FrameType.CANCEL,
  subscribe: FrameType.SUBSCRIBE,
  unsubscribe: FrameType.UNSUBSCRIBE,
  publish: FrameType.PUBLISH,
  subscribed: FrameType.SUBSCRIBED,
  event: FrameType.EVENT,
  missed: FrameType.MISSED,
  subscription_ended: FrameType.SUBSCRIPTION_ENDED,
  subscribe_from: FrameType.SUBSCRIBE_FROM,
  subscribed_at: FrameType.SUBSCRIBED_AT,
  event_at: FrameType.EVENT_AT,
  auth: FrameType.AUTH,
  auth_ok: FrameType.AUTH_OK,
};

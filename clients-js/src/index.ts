/**
 * `@rpcgen/client`: the JavaScript and TypeScript client of the rpcgen gateway, for browsers
 * and Node. This entry has no Node imports, so it bundles for browsers; Node's TCP transport
 * and WebSocket through `ws` are in `@rpcgen/client/node`.
 *
 * Layout of the sources:
 * - `client.ts`: {@link Client}, what applications and generated code call; `options.ts`, its
 *   options, their defaults and validation, and the reconnection backoff.
 * - `connection.ts`: one connection (handshake, requests and subscriptions by id, keepalive,
 *   token refresh, GOAWAY), with `ids.ts`, its id allocation; `call.ts`, one request from the
 *   caller's side; `subscription.ts`, one subscription's bounded queue and its async iteration.
 * - `transport.ts`: what a transport provides; `websocket.ts`, WebSocket; `node.ts`, TCP and
 *   WebSocket in Node.
 * - `protocol/`: the frames of `docs/protocol.md`, their encoder and decoder (both forms).
 * - `status.ts`: {@link RpcError} and {@link Code}.
 *
 * @module
 */

export { Client } from "./client.js";
export type { CallOptions, MethodDesc, TopicDesc } from "./call.js";
export {
  type BackoffOptions,
  type ClientOptions,
  type ConnectionState,
  type Logger,
  OptionsError,
  type TokenSource,
} from "./options.js";
export type { Selector, SubscribeOptions, Subscription, TopicEvent } from "./subscription.js";
export { Code, codeName, retryableByDefault, RpcError, type RpcErrorOptions } from "./status.js";
export { combineTransports, type Link, type LinkEvents, type OpenOptions, type Transport } from "./transport.js";
export { type WebSocketFactory, type WebSocketLike, webSocketTransport } from "./websocket.js";
export * from "./protocol/index.js";

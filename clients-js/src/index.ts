/**
 * `@rpcgen/client`: the JavaScript and TypeScript client of the rpcgen gateway, for browsers
 * and Node. This entry has no Node imports, so it bundles for browsers; Node's TCP transport
 * and WebSocket through `ws` are in `@rpcgen/client/node`.
 *
 * The life of a call: {@link Client.call} (`client.ts`) makes an `Op` (`call.ts`), one object
 * with one promise whose deadline is an entry on the client's wheel (`deadlines.ts`); the
 * current `Connection` (`connection.ts`) gives it a request id, the op writes its REQUEST
 * (`protocol/encode.ts`) and the transport (`websocket.ts`, `node.ts`) sends it. The reply
 * comes back through the transport to the connection, which reads the RESPONSE's header in
 * place, finds the op by its id and resolves it with a view of the payload.
 *
 * Layout. Dependencies run one way: each file imports only files further down this list
 * (`test/layout.test.ts` checks it).
 * - `index.ts`: this entry point.
 * - `node.ts`: the Node entry point, TCP (`node:net`) and WebSocket over `ws`.
 * - `client.ts`: {@link Client}, what applications and generated code call: the queue of
 *   requests waiting for a connection or for room, subscriptions to restore, reconnection.
 * - `connection.ts`: one connection: handshake, requests and subscriptions by id, keepalive,
 *   token refresh, GOAWAY.
 * - `subscription.ts`: one subscription's bounded queue and its async iteration.
 * - `call.ts`: one request from the caller's side, and the method and topic descriptors.
 * - `deadlines.ts`: the deadlines of requests and subscribes, on one timer per client.
 * - `options.ts`: the client's options, their defaults and validation, and the backoff.
 * - `websocket.ts`: the WebSocket transport.
 * - `transport.ts`: what a transport provides.
 * - `ids.ts`: request and subscription id allocation.
 * - `status.ts`: {@link RpcError} and {@link Code}.
 * - `protocol/index.ts`: the wire protocol of `docs/protocol.md`, as one module:
 * - `protocol/encode.ts`: writing frames,
 * - `protocol/decode.ts`: reading them,
 * - `protocol/frame.ts`: the frames as values, their numbers and limits.
 * - `verify.ts`: the FlatBuffers verifier runtime for generated code (`@rpcgen/client/verify`).
 * - `roughtime.ts`: Roughtime (RFC 10049) response verification with Web Crypto
 *   (`@rpcgen/client/roughtime`).
 * - `tso.ts`: the timestamp oracle's 16-byte timestamps and a client that collapses concurrent
 *   callers into one call in flight (`@rpcgen/client/tso`).
 * - `mailbox.ts`: the mailbox relay's signed statements, a device's verifier and proofs of
 *   misbehaviour (`@rpcgen/client/mailbox`).
 * - `bytes.ts`: byte-array helpers the verifiers share.
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

/**
 * The WebSocket transport: one protocol frame per binary message (`docs/protocol.md`,
 * "Transports"). In browsers it uses the global `WebSocket`; in Node, `@rpcgen/client/node`
 * builds it over the `ws` package. The socket receives `ArrayBuffer`s (`binaryType =
 * "arraybuffer"`), or with `ws` Node `Buffer`s (`"nodebuffer"`, which saves a copy per
 * message); a text message is a protocol error.
 *
 * @module
 */

import { GoawayReason } from "./protocol/frame.js";
import type { Link, LinkEvents, OpenOptions, Transport } from "./transport.js";

/**
 * The part of a WebSocket the transport uses: what the browser's `WebSocket` and the `ws`
 * package's have in common.
 */
export interface WebSocketLike {
  binaryType: string;
  readonly readyState: number;
  onopen: ((event: unknown) => void) | null;
  onmessage: ((event: { readonly data: unknown }) => void) | null;
  onclose: ((event: { readonly code: number; readonly reason: string }) => void) | null;
  onerror: ((event: unknown) => void) | null;
  send(data: Uint8Array): void;
  close(code?: number, reason?: string): void;
}

/** Makes a WebSocket to `url` that refuses messages over `maxFrameSize` bytes if it can. */
export type WebSocketFactory = (url: string, maxFrameSize: number) => WebSocketLike;

const OPEN = 1;

/** The browser's `WebSocket`, with a clear error where there is none (Node 20). */
function globalWebSocket(url: string): WebSocketLike {
  const Ctor = (globalThis as { WebSocket?: new (url: string) => unknown }).WebSocket;
  if (typeof Ctor !== "function") {
    throw new Error(
      'this JavaScript runtime has no global WebSocket; in Node, pass `transport: nodeTransport` from "@rpcgen/client/node"',
    );
  }
  return new Ctor(url) as WebSocketLike;
}

/**
 * A transport over WebSocket (`ws://`, `wss://`), by default the runtime's global `WebSocket`.
 *
 * @param create makes the socket; give one to use another implementation (as
 *   `@rpcgen/client/node` does with `ws`).
 * @param binaryType what the socket hands binary messages over as: `"arraybuffer"` (every
 *   WebSocket), or another type whose messages are `Uint8Array`s (`ws`'s `"nodebuffer"`).
 */
export function webSocketTransport(create: WebSocketFactory = globalWebSocket, binaryType = "arraybuffer"): Transport {
  return {
    schemes: ["ws:", "wss:"],
    open: (url, events, options) => openWebSocket(create, binaryType, url, events, options),
  };
}

function openWebSocket(
  create: WebSocketFactory,
  binaryType: string,
  url: URL,
  events: LinkEvents,
  options: OpenOptions,
): Promise<Link> {
  return new Promise((resolve, reject) => {
    const { signal, maxFrameSize } = options;
    if (signal.aborted) {
      reject(new Error("the connection attempt was abandoned"));
      return;
    }
    let socket: WebSocketLike;
    try {
      socket = create(url.href, maxFrameSize);
    } catch (e) {
      reject(e instanceof Error ? e : new Error(String(e)));
      return;
    }
    socket.binaryType = binaryType;
    let opened = false;
    let abandoned = false;
    /** No more frames are handed over (after a text message). */
    let stopped = false;
    let textReceived = false;
    let lastError: string | undefined;
    const abandon = () => {
      if (opened) return;
      abandoned = true;
      socket.close();
      reject(new Error("the connection attempt was abandoned"));
    };
    signal.addEventListener("abort", abandon, { once: true });

    const link: Link = {
      send(frame) {
        if (socket.readyState === OPEN) socket.send(frame.subarray(4));
      },
      close(goaway) {
        if (socket.readyState > OPEN) return;
        if (!goaway) return socket.close(1000);
        const code = textReceived ? 1003 : closeCode(goaway.reason);
        try {
          socket.close(code, closeReason(goaway.message));
        } catch {
          // Browsers let a page send 1000 and 3000-4999 only; the GOAWAY said the rest.
          socket.close(1000);
        }
      },
    };
    socket.onopen = () => {
      if (abandoned) return;
      opened = true;
      signal.removeEventListener("abort", abandon);
      resolve(link);
    };
    socket.onmessage = (event) => {
      if (stopped || !opened) return;
      const data = event.data;
      if (data instanceof ArrayBuffer) {
        events.frame(new Uint8Array(data));
      } else if (data instanceof Uint8Array) {
        // A Node `Buffer` ("nodebuffer"): the decoder cuts payloads from it as plain views.
        events.frame(data);
      } else {
        stopped = true;
        textReceived = true;
        events.invalid("a text message (the protocol's messages are binary)", GoawayReason.PROTOCOL_ERROR);
      }
    };
    socket.onerror = (event) => {
      const message = (event as { message?: unknown } | null)?.message;
      lastError = typeof message === "string" && message !== "" ? message : "WebSocket error";
    };
    socket.onclose = (event) => {
      const why = `code ${event.code}${event.reason ? `, ${JSON.stringify(event.reason)}` : ""}`;
      if (!opened) {
        if (abandoned) return;
        abandoned = true;
        signal.removeEventListener("abort", abandon);
        reject(new Error(`the WebSocket closed before it opened (${lastError ?? why})`));
        return;
      }
      stopped = true;
      events.closed(lastError ? `the WebSocket failed: ${lastError} (${why})` : `the WebSocket closed (${why})`);
    };
  });
}

/** The close code matching a GOAWAY's reason (`docs/protocol.md`, "WebSocket"). */
export function closeCode(reason: number): number {
  switch (reason) {
    case GoawayReason.SHUTTING_DOWN:
      return 1001;
    case GoawayReason.PROTOCOL_ERROR:
    case GoawayReason.UNSUPPORTED_VERSION:
      return 1002;
    case GoawayReason.FRAME_TOO_LARGE:
      return 1009;
    case GoawayReason.UNAUTHENTICATED:
    case GoawayReason.TOKEN_EXPIRED:
    case GoawayReason.POLICY:
    case GoawayReason.HANDSHAKE_TIMEOUT:
      return 1008;
    case GoawayReason.TOO_MANY_CONNECTIONS:
    case GoawayReason.SLOW_CONSUMER:
      return 1013;
    default:
      return 1000;
  }
}

const utf8 = new TextEncoder();

/** A GOAWAY's message cut to the 123 bytes a close frame's reason holds, on a character boundary. */
function closeReason(message: string): string {
  if (utf8.encode(message).length <= 123) return message;
  let out = "";
  let size = 0;
  for (const char of message) {
    const n = utf8.encode(char).length;
    if (size + n > 123) break;
    out += char;
    size += n;
  }
  return out;
}

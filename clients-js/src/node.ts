/**
 * `@rpcgen/client/node`: what only Node has. TCP (`tcp://host:port`, over `node:net`), and
 * WebSocket through the `ws` package (Node 20 has no global `WebSocket`). Pass
 * {@link nodeTransport} as a client's `transport` to speak all three schemes:
 *
 * ```ts
 * import { Client } from "@rpcgen/client";
 * import { nodeTransport } from "@rpcgen/client/node";
 *
 * const client = await Client.connect({ endpoints: ["tcp://127.0.0.1:7400"], transport: nodeTransport });
 * ```
 *
 * The main entry (`@rpcgen/client`) stays free of Node imports, so that it bundles for browsers.
 *
 * @module
 */

import { connect as netConnect, type Socket } from "node:net";

import { FrameDecodeError, FrameReader } from "./protocol/decode.js";
import { combineTransports, type Link, type LinkEvents, type OpenOptions, type Transport } from "./transport.js";
import { type WebSocketLike, webSocketTransport } from "./websocket.js";

/** How long a closed TCP link waits for its last bytes to leave before it is destroyed. */
const LINGER_MS = 2_000;

/** The byte-stream transport: `tcp://host:port`, each frame after its `u32` length prefix. */
export const tcpTransport: Transport = {
  schemes: ["tcp:"],
  open: openTcp,
};

function openTcp(url: URL, events: LinkEvents, options: OpenOptions): Promise<Link> {
  return new Promise((resolve, reject) => {
    const { signal, maxFrameSize } = options;
    if (signal.aborted) {
      reject(new Error("the connection attempt was abandoned"));
      return;
    }
    // `new URL("tcp://[::1]:7400").hostname` keeps the brackets of an IPv6 address.
    const host = url.hostname.replace(/^\[(.*)\]$/, "$1");
    const socket: Socket = netConnect({ host, port: Number(url.port) });
    socket.setNoDelay(true);
    const reader = new FrameReader(maxFrameSize);
    let opened = false;
    /** No more frames are handed over (after a bad length prefix). */
    let stopped = false;
    let lastError: Error | undefined;
    let corked = false;

    const abandon = () => {
      socket.destroy();
      reject(signal.reason instanceof Error ? signal.reason : new Error("the connection attempt was abandoned"));
    };
    signal.addEventListener("abort", abandon, { once: true });

    const link: Link = {
      send(frame) {
        if (socket.destroyed || socket.writableEnded) return;
        // Frames sent in one turn of the event loop leave in one write.
        if (!corked) {
          corked = true;
          socket.cork();
          process.nextTick(() => {
            corked = false;
            socket.uncork();
          });
        }
        socket.write(frame);
      },
      close() {
        if (socket.destroyed) return;
        socket.end();
        setTimeout(() => socket.destroy(), LINGER_MS).unref();
      },
    };
    socket.once("connect", () => {
      opened = true;
      signal.removeEventListener("abort", abandon);
      resolve(link);
    });
    socket.on("data", (chunk: Buffer) => {
      if (stopped) return;
      // A plain view of the same bytes: payloads handed out are `Uint8Array`s, not `Buffer`s.
      const bytes = new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength);
      try {
        reader.push(bytes, (frame) => {
          if (!stopped) events.frame(frame);
        });
      } catch (e) {
        if (!(e instanceof FrameDecodeError)) throw e;
        stopped = true;
        events.invalid(e.message, e.goawayReason);
      }
    });
    socket.on("error", (e) => {
      lastError = e;
    });
    socket.on("close", () => {
      stopped = true;
      if (!opened) {
        if (signal.aborted) return;
        signal.removeEventListener("abort", abandon);
        reject(lastError ?? new Error("the connection closed before it opened"));
        return;
      }
      events.closed(lastError ? `the connection failed: ${lastError.message}` : "the gateway closed the connection");
    });
  });
}

/**
 * WebSocket (`ws://`, `wss://`) over the `ws` package, an optional peer dependency loaded when
 * the first WebSocket is opened. Messages over the client's maximum frame size are refused by
 * `ws` itself.
 */
export const nodeWebSocketTransport: Transport = {
  schemes: ["ws:", "wss:"],
  async open(url, events, options) {
    let WebSocket: new (url: string, options: { maxPayload: number }) => WsSocket;
    try {
      ({ default: WebSocket } = (await import("ws")) as { default: typeof WebSocket });
    } catch (e) {
      throw new Error(`WebSocket in Node needs the \`ws\` package (npm install ws): ${String(e)}`);
    }
    // `nodebuffer`: messages arrive as views of what the socket read, where `arraybuffer` would
    // copy each one into an `ArrayBuffer` of its own.
    const transport = webSocketTransport(
      (href, maxFrameSize) => new WsAdapter(new WebSocket(href, { maxPayload: maxFrameSize })),
      "nodebuffer",
    );
    return transport.open(url, events, options);
  },
};

/** What the adapter uses of a `ws` WebSocket: its `EventEmitter` side, and its TCP socket. */
interface WsSocket {
  binaryType: string;
  readonly readyState: number;
  /** The socket under the WebSocket once open (`ws` keeps it there; not a documented API). */
  readonly _socket?: { cork?: () => void; uncork?: () => void } | null;
  on(event: "open", listener: () => void): void;
  on(event: "message", listener: (data: Uint8Array, isBinary: boolean) => void): void;
  on(event: "close", listener: (code: number, reason: Uint8Array) => void): void;
  on(event: "error", listener: (error: Error) => void): void;
  send(data: Uint8Array): void;
  close(code?: number, reason?: string): void;
}

/**
 * A `ws` WebSocket as a {@link WebSocketLike}, listening through its `EventEmitter` API: its
 * `onmessage` builds a `MessageEvent` per message, which costs about as much as the rest of
 * handing a reply to its caller. The transport reads each event at once, so one is reused.
 */
class WsAdapter implements WebSocketLike {
  onopen: ((event: unknown) => void) | null = null;
  onmessage: ((event: { readonly data: unknown }) => void) | null = null;
  onclose: ((event: { readonly code: number; readonly reason: string }) => void) | null = null;
  onerror: ((event: unknown) => void) | null = null;
  private readonly message: { data: unknown } = { data: undefined };
  /** Frames sent in this turn of the event loop: none, one, or more (then corked). */
  private burst: 0 | 1 | 2 = 0;
  private readonly endBurst = (): void => {
    if (this.burst === 2) this.socket._socket?.uncork?.();
    this.burst = 0;
  };

  constructor(private readonly socket: WsSocket) {
    socket.on("open", () => this.onopen?.(undefined));
    socket.on("message", (data, isBinary) => {
      const event = this.message;
      event.data = isBinary ? data : new TextDecoder().decode(data);
      this.onmessage?.(event);
      event.data = undefined;
    });
    socket.on("close", (code, reason) => this.onclose?.({ code, reason: new TextDecoder().decode(reason) }));
    // An ErrorEvent's `message`, which the transport reads, is the error's own.
    socket.on("error", (error) => this.onerror?.(error));
  }

  get binaryType(): string {
    return this.socket.binaryType;
  }
  set binaryType(type: string) {
    this.socket.binaryType = type;
  }
  get readyState(): number {
    return this.socket.readyState;
  }
  /**
   * Sends a message. The first of a turn of the event loop leaves at once, so that the gateway
   * can start on it; those after it in the same turn (calls made together, or made as the
   * replies of one read come in) wait for the turn's end and leave in one write.
   */
  send(data: Uint8Array): void {
    if (this.burst === 0) {
      this.burst = 1;
      process.nextTick(this.endBurst);
    } else if (this.burst === 1) {
      const tcp = this.socket._socket;
      if (tcp?.cork && tcp.uncork) {
        this.burst = 2;
        tcp.cork();
      }
    }
    this.socket.send(data);
  }
  close(code?: number, reason?: string): void {
    this.socket.close(code, reason);
  }
}

/** TCP and WebSocket: every scheme a Node program can use. */
export const nodeTransport: Transport = combineTransports(tcpTransport, nodeWebSocketTransport);

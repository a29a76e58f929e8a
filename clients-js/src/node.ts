/**
 * `@rpcgen/client/node`: what only Node has. TCP (`tcp://host:port`, over `node:net`), TCP
 * inside TLS (`tls://host:port`, over `node:tls`), and WebSocket (`ws://`, `wss://`) through
 * the `ws` package (Node 20 has no global `WebSocket`). Pass {@link nodeTransport} as a
 * client's `transport` to speak all four schemes:
 *
 * ```ts
 * import { Client } from "@rpcgen/client";
 * import { nodeTransport } from "@rpcgen/client/node";
 *
 * const client = await Client.connect({ endpoints: ["tcp://127.0.0.1:7400"], transport: nodeTransport });
 * ```
 *
 * TLS checks the gateway's certificate against Node's CA certificates (and `NODE_EXTRA_CA_CERTS`);
 * {@link nodeTransportWith} takes CA certificates of a deployment's own:
 *
 * ```ts
 * const transport = nodeTransportWith({ ca: readFileSync("ca.pem") });
 * const client = await Client.connect({ endpoints: ["tls://gateway.internal:7400"], transport });
 * ```
 *
 * The main entry (`@rpcgen/client`) stays free of Node imports, so that it bundles for browsers.
 *
 * @module
 */

import { connect as netConnect, isIP, type Socket } from "node:net";
import { connect as tlsConnect } from "node:tls";

import { FrameDecodeError, FrameReader } from "./protocol/decode.js";
import { combineTransports, type Link, type LinkEvents, type OpenOptions, type Transport } from "./transport.js";
import { type WebSocketLike, webSocketTransport } from "./websocket.js";

/** How long a closed TCP link waits for its last bytes to leave before it is destroyed. */
const LINGER_MS = 2_000;

/** TLS settings of the Node transports. */
export interface NodeTlsOptions {
  /**
   * The CA certificates (PEM) that gateways' certificates must chain to, instead of Node's own.
   * Default: Node's (with `NODE_EXTRA_CA_CERTS`).
   */
  readonly ca?: string | Uint8Array | readonly (string | Uint8Array)[];
}

/**
 * The byte-stream transport: `tcp://host:port`, each frame after its `u32` length prefix, and
 * the same inside TLS at `tls://host:port`, the certificate checked against `tls.ca` (default:
 * Node's CA certificates) for the URL's host.
 */
export function streamTransport(tls: NodeTlsOptions = {}): Transport {
  return {
    schemes: ["tcp:", "tls:"],
    open: (url, events, options) => openStream(url, events, options, tls),
  };
}

/** {@link streamTransport} with Node's CA certificates. */
export const tcpTransport: Transport = streamTransport();

function openStream(url: URL, events: LinkEvents, options: OpenOptions, tls: NodeTlsOptions): Promise<Link> {
  return new Promise((resolve, reject) => {
    const { signal, maxFrameSize } = options;
    if (signal.aborted) {
      reject(new Error("the connection attempt was abandoned"));
      return;
    }
    // `new URL("tcp://[::1]:7400").hostname` keeps the brackets of an IPv6 address.
    const host = url.hostname.replace(/^\[(.*)\]$/, "$1");
    const port = Number(url.port);
    const secure = url.protocol === "tls:";
    const socket: Socket = secure
      ? tlsConnect({
          host,
          port,
          // SNI carries names only; an IP address is checked against the certificate's IPs.
          ...(isIP(host) === 0 ? { servername: host } : {}),
          ...(tls.ca === undefined ? {} : { ca: caList(tls.ca) }),
        })
      : netConnect({ host, port });
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
    // A TLS socket is ready once its handshake is done (and its certificate checked).
    socket.once(secure ? "secureConnect" : "connect", () => {
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
        const error = lastError ?? new Error("the connection closed before it opened");
        reject(secure ? new Error(`TLS: ${error.message}`) : error);
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
export const nodeWebSocketTransport: Transport = nodeWebSocketTransportWith();

/** {@link nodeWebSocketTransport} with `tls.ca` for `wss://` gateways. */
export function nodeWebSocketTransportWith(tls: NodeTlsOptions = {}): Transport {
  const ca = tls.ca === undefined ? {} : { ca: caList(tls.ca) };
  return {
    schemes: ["ws:", "wss:"],
    async open(url, events, options) {
      let WebSocket: new (url: string, options: { maxPayload: number; ca?: (string | Buffer)[] }) => WsSocket;
      try {
        ({ default: WebSocket } = (await import("ws")) as { default: typeof WebSocket });
      } catch (e) {
        throw new Error(`WebSocket in Node needs the \`ws\` package (npm install ws): ${String(e)}`);
      }
      // `nodebuffer`: messages arrive as views of what the socket read, where `arraybuffer` would
      // copy each one into an `ArrayBuffer` of its own.
      const transport = webSocketTransport(
        (href, maxFrameSize) => new WsAdapter(new WebSocket(href, { maxPayload: maxFrameSize, ...ca })),
        "nodebuffer",
      );
      return transport.open(url, events, options);
    },
  };
}

/** One CA certificate or several, as Node's `ca` option takes them. */
function caList(ca: NonNullable<NodeTlsOptions["ca"]>): (string | Buffer)[] {
  const list = typeof ca === "string" || ca instanceof Uint8Array ? [ca] : [...ca];
  return list.map((pem) => (typeof pem === "string" ? pem : Buffer.from(pem.buffer, pem.byteOffset, pem.byteLength)));
}

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

/** TCP, TLS and WebSocket: every scheme a Node program can use, with Node's CA certificates. */
export const nodeTransport: Transport = combineTransports(tcpTransport, nodeWebSocketTransport);

/** {@link nodeTransport} with `tls.ca` for `tls://` and `wss://` gateways. */
export function nodeTransportWith(tls: NodeTlsOptions): Transport {
  return combineTransports(streamTransport(tls), nodeWebSocketTransportWith(tls));
}

// A scripted gateway for the client behaviours a real gateway does not produce on demand: a
// TCP server that speaks the protocol through this package's codec, and lets a test read what
// the client sent and answer frame by frame (as gateway/client/tests/support does for Rust).

import assert from "node:assert/strict";
import { createServer, type Server } from "node:net";

import { WebSocketServer, type WebSocket } from "ws";

import { decodeMessage, encodeFrame, type Frame, FrameReader, type WelcomeFrame } from "@rpcgen/client";

/** How a peer's bytes travel: a TCP socket (frames with length prefixes) or a WebSocket (one frame per message). */
interface Wire {
  /** `frame` in byte-stream form; a WebSocket sends it without the prefix. */
  write(frame: Uint8Array): void;
  /** Sends a text message (WebSocket only). */
  writeText?(text: string): void;
  destroy(): void;
}

/** A listening scripted gateway. */
export class ScriptedGateway {
  private readonly accepted: Peer[] = [];
  private readonly waiters: ((peer: Peer) => void)[] = [];

  private constructor(
    private readonly stop: () => Promise<void>,
    readonly url: string,
  ) {}

  /** Listens on a free loopback port, over TCP (`tcp://`) or WebSocket (`ws://`). */
  static async listen(transport: "tcp" | "ws" = "tcp"): Promise<ScriptedGateway> {
    if (transport === "ws") {
      const server = new WebSocketServer({ host: "127.0.0.1", port: 0 });
      await new Promise<void>((resolve) => server.once("listening", resolve));
      const address = server.address();
      assert.ok(typeof address === "object" && address);
      const stop = () => new Promise<void>((resolve) => {
        for (const client of server.clients) client.terminate();
        server.close(() => resolve());
      });
      const gateway = new ScriptedGateway(stop, `ws://127.0.0.1:${address.port}/`);
      server.on("connection", (socket: WebSocket) => gateway.arrived(Peer.overWebSocket(socket)));
      return gateway;
    }
    const server: Server = createServer();
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const address = server.address();
    assert.ok(typeof address === "object" && address);
    const stop = () => new Promise<void>((resolve) => server.close(() => resolve()));
    const gateway = new ScriptedGateway(stop, `tcp://127.0.0.1:${address.port}`);
    server.on("connection", (socket) => {
      const peer = new Peer({
        write: (frame) => socket.write(frame),
        destroy: () => socket.destroy(),
      });
      const reader = new FrameReader(16 * 1024 * 1024);
      socket.on("data", (chunk: Buffer) => {
        reader.push(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength), (body) => peer.received(body));
      });
      socket.on("close", () => peer.ended());
      socket.on("error", () => {});
      gateway.arrived(peer);
    });
    return gateway;
  }

  private arrived(peer: Peer): void {
    const waiter = this.waiters.shift();
    if (waiter) waiter(peer);
    else this.accepted.push(peer);
  }

  /** The next connection. */
  accept(): Promise<Peer> {
    const peer = this.accepted.shift();
    if (peer) return Promise.resolve(peer);
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** The next connection, after its HELLO was answered with WELCOME (`welcome` overrides fields). */
  async acceptHandshake(welcome: Partial<WelcomeFrame> = {}): Promise<Peer> {
    const peer = await this.accept();
    const hello = await peer.next("hello");
    assert.equal(hello.version, 1);
    peer.send({
      type: "welcome",
      version: 1,
      maxFrameSize: 16 * 1024 * 1024,
      maxInFlight: 100,
      idleTimeoutMs: 0,
      serverId: "scripted",
      authExpiresInMs: 0,
      ...welcome,
    });
    return peer;
  }

  close(): Promise<void> {
    for (const peer of this.accepted) peer.close();
    return this.stop();
  }
}

/** One client connection, seen from the gateway's side. */
export class Peer {
  private readonly frames: Frame[] = [];
  private readonly waiters: ((frame: Frame | null) => void)[] = [];
  private closedFlag = false;
  /** The client's WebSocket close frame, once the connection closed (WebSocket only). */
  closeFrame: { code: number; reason: string } | undefined;

  constructor(private readonly wire: Wire) {}

  static overWebSocket(socket: WebSocket): Peer {
    const peer = new Peer({
      write: (frame) => socket.send(frame.subarray(4)),
      writeText: (text) => socket.send(text),
      destroy: () => socket.terminate(),
    });
    socket.on("message", (data: Buffer, isBinary: boolean) => {
      assert.ok(isBinary, "the client sends binary messages only");
      peer.received(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    });
    socket.on("close", (code: number, reason: Buffer) => {
      peer.closeFrame = { code, reason: reason.toString() };
      peer.ended();
    });
    return peer;
  }

  /** A frame arrived from the client (message form). */
  received(body: Uint8Array): void {
    const frame = decodeMessage(body);
    if (frame) this.deliver(frame);
  }

  /** The client's side closed. */
  ended(): void {
    this.closedFlag = true;
    for (const waiter of this.waiters.splice(0)) waiter(null);
  }

  private deliver(frame: Frame): void {
    const waiter = this.waiters.shift();
    if (waiter) waiter(frame);
    else this.frames.push(frame);
  }

  /** The next frame the client sent, or null when it closed; fails after `ms`. */
  read(ms = 5000): Promise<Frame | null> {
    const frame = this.frames.shift();
    if (frame) return Promise.resolve(frame);
    if (this.closedFlag) return Promise.resolve(null);
    return new Promise((resolve, reject) => {
      const waiter = (f: Frame | null) => {
        clearTimeout(timer);
        resolve(f);
      };
      const timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(waiter), 1);
        reject(new Error(`the client sent nothing within ${ms} ms`));
      }, ms);
      this.waiters.push(waiter);
    });
  }

  /** The next frame, which must be of `type` (PINGs are answered and skipped). */
  async next<T extends Frame["type"]>(type: T, ms = 5000): Promise<Extract<Frame, { type: T }>> {
    for (;;) {
      const frame = await this.read(ms);
      assert.ok(frame, `the client closed the connection instead of sending ${type}`);
      if (frame.type === "ping" && type !== "ping") {
        this.send({ type: "pong", data: frame.data });
        continue;
      }
      assert.equal(frame.type, type, `expected ${type}, got ${JSON.stringify(frame, (_, v) => (typeof v === "bigint" ? String(v) : v))}`);
      return frame as Extract<Frame, { type: T }>;
    }
  }

  /** Resolves when the client has closed the connection. */
  async closed(ms = 5000): Promise<Frame[]> {
    const rest: Frame[] = [];
    for (;;) {
      const frame = await this.read(ms);
      if (!frame) return rest;
      rest.push(frame);
    }
  }

  send(...frames: Frame[]): void {
    for (const frame of frames) this.wire.write(encodeFrame(frame));
  }

  /** Writes a raw frame in byte-stream form (for frames the codec would refuse to encode). */
  sendRaw(bytes: Uint8Array): void {
    this.wire.write(bytes);
  }

  /** Sends a text message (WebSocket only). */
  sendText(text: string): void {
    assert.ok(this.wire.writeText, "text messages exist on WebSocket only");
    this.wire.writeText(text);
  }

  close(): void {
    this.wire.destroy();
  }
}

/**
 * What the client asks of a transport: open a connection to a URL, send frames, hand over the
 * frames that arrive, say when it closed. The client speaks the protocol; a transport only
 * moves frames. Two ship with the package: WebSocket (`./websocket.ts`, browsers, and Node
 * through `ws`) and TCP (`./node.ts`, Node only).
 *
 * @module
 */

/** What a link tells its connection. A link calls nothing after `closed`. */
export interface LinkEvents {
  /**
   * A frame arrived, in message form (without a length prefix). It may be a subclass of
   * `Uint8Array` (a Node `Buffer`); what the client hands out of it are plain views.
   */
  frame(frame: Uint8Array): void;
  /**
   * The peer broke the protocol below the frames (a length prefix over the limit, a text
   * WebSocket message): the connection says so with a GOAWAY of this reason and closes.
   */
  invalid(message: string, goawayReason: number): void;
  /** The link is closed, by either side; `reason` says why, for logs. */
  closed(reason: string): void;
}

/** One open connection that carries frames. */
export interface Link {
  /**
   * Sends one frame, given in byte-stream form (`encodeFrame`: the length prefix, then the
   * frame); a message transport sends the frame without the prefix. Never blocks: frames queue
   * in the transport.
   */
  send(frame: Uint8Array): void;
  /**
   * Closes once what was sent has gone out (within a short bound); `closed` follows. `goaway`
   * is the GOAWAY the client sent just before, if it sent one: a WebSocket closes with the code
   * that matches its reason (`docs/protocol.md`, "WebSocket").
   */
  close(goaway?: { readonly reason: number; readonly message: string }): void;
}

/** How to open a link. */
export interface OpenOptions {
  /** The largest frame the client accepts. */
  readonly maxFrameSize: number;
  /** Aborted when the attempt is abandoned (the connect timeout, or the client closing). */
  readonly signal: AbortSignal;
}

/** A way to reach gateways: the URL schemes it speaks, and how to open a link to one. */
export interface Transport {
  /** The URL schemes it opens, with their colon: `"ws:"`, `"wss:"`, `"tcp:"`. */
  readonly schemes: readonly string[];
  /**
   * Opens a link to `url`; resolves once frames can be sent.
   *
   * @throws an `Error` saying why the link could not be opened.
   */
  open(url: URL, events: LinkEvents, options: OpenOptions): Promise<Link>;
}

/** One transport made of several, each used for its own schemes (the first that speaks one wins). */
export function combineTransports(...transports: Transport[]): Transport {
  const schemes = [...new Set(transports.flatMap((t) => t.schemes))];
  return {
    schemes,
    open(url, events, options) {
      const transport = transports.find((t) => t.schemes.includes(url.protocol));
      if (!transport) return Promise.reject(new Error(`no transport speaks ${url.protocol}`));
      return transport.open(url, events, options);
    },
  };
}

// The test's own client of the gateway: a Node program on TCP, with the same generated stubs as
// the page, that changes the running total and publishes broadcasts for the page to show.
// Bundled by the test with esbuild (the packages stay external).

import { Client } from "@rpcgen/client";
import { nodeTransport } from "@rpcgen/client/node";
import { examples } from "../generated/index.js";

const { some_api: someApi, echo } = examples;

export interface Peer {
  /** Subtracts `amount` from the running total (the service then publishes it on `pub`). */
  sub(amount: bigint): Promise<void>;
  /** Publishes `text` on Echo.broadcast. */
  broadcast(text: string): Promise<void>;
  /** The texts received on Echo.broadcast so far, in order (the peer subscribes when it connects). */
  readonly received: readonly string[];
  close(): Promise<void>;
}

export async function connect(endpoint: string): Promise<Peer> {
  const client = await Client.connect({ endpoints: [endpoint], transport: nodeTransport, name: "web-example-test" });
  const calculator = new someApi.SomeApiClient(client);
  const echoes = new echo.EchoClient(client);
  const received: string[] = [];
  const broadcasts = await echoes.subscribeBroadcast();
  void (async () => {
    for await (const event of broadcasts) {
      received.push(new TextDecoder().decode(event.message.dataArray() ?? new Uint8Array()));
    }
  })();
  return {
    received,
    sub: (amount) => calculator.sub(new someApi.RequestSubT({ amount })),
    broadcast: (text) => echoes.publishBroadcast(new echo.BlobT({ data: new TextEncoder().encode(text) })),
    close: () => client.close(),
  };
}

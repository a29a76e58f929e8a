// The web example: a page that calls the gateway's example services over WebSocket with the
// code rpcgen generates for TypeScript, and shows topic events as they arrive. Bundled by
// esbuild (build.mjs); the browser test (test/browser.test.mjs) drives it.
//
// The gateway's address comes from the page's `?gateway=` parameter, by default the gateway's
// default WebSocket port on the page's host.

import { Client, RpcError, type ConnectionState } from "@rpcgen/client";
import { verifyRoughtime } from "@rpcgen/client/roughtime";
import { examples } from "../generated/index.js";

const { some_api: someApi, echo, roughtime } = examples;

const endpoint =
  new URLSearchParams(location.search).get("gateway") ?? `ws://${location.hostname || "127.0.0.1"}:7402`;

function element<T extends HTMLElement = HTMLElement>(id: string): T {
  const found = document.getElementById(id);
  if (!found) throw new Error(`the page has no #${id}`);
  return found as T;
}

/** Shows an error where the result would have gone: the status name, and the declared error's name if any. */
function describe(error: unknown): string {
  if (error instanceof RpcError) {
    const declared = someApi.someApiError(error);
    return `${error.codeName}${declared ? ` (${declared})` : ""}: ${error.text}`;
  }
  return String(error);
}

function showState(state: ConnectionState): void {
  const out = element("state");
  out.dataset.status = state.status;
  switch (state.status) {
    case "connected":
      out.textContent = `connected to ${state.serverId}`;
      break;
    case "connecting":
      out.textContent = state.lastError ? `connecting (attempt ${state.attempt}: ${state.lastError})` : "connecting";
      break;
    case "closed":
      out.textContent = state.error ? `closed: ${state.error.message}` : "closed";
      break;
  }
}

const client = new Client({ endpoints: [endpoint], name: "web-example" });
element("endpoint").textContent = endpoint;
showState(client.state);
client.onStateChange(showState);

const calculator = new someApi.SomeApiClient(client, { timeoutMs: 5_000 });
const echoes = new echo.EchoClient(client, { timeoutMs: 5_000 });

element<HTMLFormElement>("sum-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const out = element("sum");
  out.classList.remove("error");
  out.textContent = "…";
  let request: InstanceType<typeof someApi.RequestSumT>;
  try {
    request = new someApi.RequestSumT({
      a: BigInt(element<HTMLInputElement>("a").value),
      b: BigInt(element<HTMLInputElement>("b").value),
    });
  } catch {
    out.classList.add("error");
    out.textContent = "a and b must be integers";
    return;
  }
  calculator.sum(request).then(
    (reply) => {
      out.textContent = reply.sum().toString();
    },
    (error: unknown) => {
      out.classList.add("error");
      out.textContent = describe(error);
    },
  );
});

element<HTMLFormElement>("broadcast-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const out = element("published");
  const text = element<HTMLInputElement>("message").value;
  echoes.publishBroadcast(new echo.BlobT({ data: new TextEncoder().encode(text) })).then(
    () => {
      out.classList.remove("error");
      out.textContent = "published";
    },
    (error: unknown) => {
      out.classList.add("error");
      out.textContent = describe(error);
    },
  );
});

/** Follows the running total; the topic is `retain`, so the current total comes first. */
async function followTotal(): Promise<void> {
  const totals = await calculator.subscribePub();
  for await (const event of totals) {
    element("total").textContent = event.message.value().toString();
    element("changes").textContent = event.message.changes().toString();
  }
}

/** Lists what anyone publishes on Echo.broadcast, newest first, the last 20. */
async function followBroadcasts(): Promise<void> {
  const broadcasts = await echoes.subscribeBroadcast();
  const list = element("broadcasts");
  let received = 0;
  for await (const event of broadcasts) {
    received += 1;
    element("received").textContent = String(received);
    const item = document.createElement("li");
    item.textContent = new TextDecoder().decode(event.message.dataArray() ?? new Uint8Array());
    list.prepend(item);
    while (list.children.length > 20) list.lastElementChild?.remove();
  }
}

const clock = new roughtime.RoughtimeClient(client, { timeoutMs: 5_000 });

/**
 * Gets the time through the gateway for a fresh random nonce and verifies it in the browser
 * (Web Crypto). The long-term key comes from the service itself here, which only shows the
 * mechanism: a real client is given the key another way.
 */
element<HTMLFormElement>("time-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const out = element("time");
  out.classList.remove("error");
  out.textContent = "…";
  void (async () => {
    const key = (await clock.publicKey(new roughtime.EmptyT())).keyArray();
    element("time-key").textContent = btoa(String.fromCharCode(...key));
    const nonce = crypto.getRandomValues(new Uint8Array(32));
    const reply = await clock.time(new roughtime.TimeRequestT({ nonce, draft: false }));
    const verified = await verifyRoughtime(
      reply.requestArray(),
      reply.responseArray(),
      key,
      nonce,
    );
    const when = new Date(Number(verified.midp) * 1000).toISOString();
    out.textContent = `verified: ${when} ± ${verified.radius} s (version ${verified.version})`;
  })().catch((error: unknown) => {
    out.classList.add("error");
    out.textContent = describe(error);
  });
});

for (const follow of [followTotal, followBroadcasts]) {
  follow().catch((error: unknown) => {
    element("state").textContent = `subscription failed: ${describe(error)}`;
  });
}

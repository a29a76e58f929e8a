// The connection to the gateway as the bar shows it (`#state`, its `data-status` one of
// `connecting`, `connected`, `reconnecting`, `closed`, or `signed-out` with no session), and how
// the page words an RPC error; and how it finds its elements.

import { type ConnectionState, RpcError } from "@rpcgen/client";

import { trackerError } from "../generated/examples/tracker.js";

export type Status = "signed-out" | "connecting" | "connected" | "reconnecting" | "closed";

/** The page's element `#id`; throws if the page has none (index.html and the code disagree). */
export function element<T extends HTMLElement = HTMLElement>(id: string): T {
  const found = document.getElementById(id);
  if (!found) throw new Error(`the page has no #${id}`);
  return found as T;
}

/** Shows `status` with `text` (and `detail` as the tooltip) in `#state`. */
export function showStatus(out: HTMLElement, status: Status, text: string, detail = ""): void {
  out.dataset.status = status;
  out.textContent = text;
  out.title = detail;
}

/**
 * Shows a client state. `wasConnected` tells a first connection (`connecting`) from a lost one
 * being restored (`reconnecting`).
 */
export function showState(out: HTMLElement, state: ConnectionState, wasConnected: boolean): void {
  switch (state.status) {
    case "connected":
      showStatus(out, "connected", "connected", `${state.endpoint} (${state.serverId})`);
      break;
    case "connecting": {
      const status = wasConnected ? "reconnecting" : "connecting";
      const attempt = state.attempt > 1 ? ` (attempt ${state.attempt})` : "";
      showStatus(out, status, `${status}${attempt}…`, state.lastError ?? "");
      break;
    }
    case "closed":
      showStatus(out, "closed", "closed", state.error ? describe(state.error) : "");
      break;
  }
}

/** An error as the page shows it: the status name and the declared error's name if any, then the text. */
export function describe(error: unknown): string {
  if (error instanceof RpcError) {
    const declared = trackerError(error);
    return `${error.codeName}${declared ? ` (${declared})` : ""}: ${error.text}`;
  }
  return error instanceof Error ? error.message : String(error);
}

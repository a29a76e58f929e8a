/**
 * Request and subscription ids (`docs/protocol.md`, "Requests" and "Subscriptions"): allocated
 * sequentially from 1, wrapping from 4,294,967,295 to 1 and skipping ids still in use, so that
 * an id is reused as late as possible. Since a connection allocates a request id when it sends
 * the request, id order is send order, which is what a GOAWAY's `last_request_id` refers to.
 *
 * @module
 */

import { U32_MAX } from "./protocol/frame.js";

/** Ids of one kind on one connection. */
export class Ids {
  /** The next id to try. */
  next = 1;

  /**
   * A fresh id: never 0, never one in `inUse` (a connection's table of requests or
   * subscriptions by id). Fewer than 2^32 - 1 ids are ever in use at once (the gateway's limits
   * are `u32`s), so the search ends.
   */
  allocate(inUse: { has(id: number): boolean }): number {
    let id = this.next;
    while (inUse.has(id)) id = id === U32_MAX ? 1 : id + 1;
    this.next = id === U32_MAX ? 1 : id + 1;
    return id;
  }

  /**
   * Whether request `id` was sent after `lastRequestId` (a GOAWAY's: every request when it is
   * 0), counting across the wrap: ids in use and `lastRequestId` all lie within the last
   * 2^32 - 1 allocations, and an id allocated more recently is "younger".
   */
  sentAfter(id: number, lastRequestId: number): boolean {
    if (lastRequestId === 0) return true;
    const age = (x: number) => (this.next - x) >>> 0;
    return age(id) < age(lastRequestId);
  }
}

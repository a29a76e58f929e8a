// Request and subscription ids: sequential from 1, wrapping past 0, skipping ids in use; and
// which requests a GOAWAY's last_request_id leaves out, across the wrap.

import assert from "node:assert/strict";
import { test } from "node:test";

// Internal: not in the package's exports, so imported by its path in the build.
import { Ids } from "../dist/ids.js";

const MAX = 0xffff_ffff;

test("ids start at 1, skip ids in use, and wrap from u32::MAX to 1", () => {
  const ids = new Ids();
  const inUse = new Set([2]);
  const take = () => ids.allocate(inUse);
  assert.equal(take(), 1);
  assert.equal(take(), 3, "2 is in use");
  ids.next = MAX;
  assert.equal(take(), MAX);
  assert.equal(take(), 1, "0 is never an id");
  assert.equal(take(), 3);
});

test("GOAWAY splits the requests by send order, across the wrap", () => {
  const ids = new Ids();
  ids.next = MAX - 1;
  const sent = [MAX - 1, MAX, 1, 2].map(() => ids.allocate(new Set()));
  assert.deepEqual(sent, [MAX - 1, MAX, 1, 2]);
  // The gateway answers up to u32::MAX: 1 and 2 were sent after it.
  assert.deepEqual(sent.filter((id) => ids.sentAfter(id, MAX)), [1, 2]);
  assert.deepEqual(sent.filter((id) => ids.sentAfter(id, 1)), [2]);
  assert.deepEqual(sent.filter((id) => ids.sentAfter(id, 0)), sent, "0: nothing will be answered");
  assert.deepEqual(sent.filter((id) => ids.sentAfter(id, 2)), []);
});

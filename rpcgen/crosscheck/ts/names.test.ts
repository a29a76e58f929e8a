/**
 * `names.fbs` and `names.service`: schema names that meet reserved words, the globals and the
 * parameters generated code uses, and the generated classes' own members. That the code
 * compiles is checked by the setup (`tsc`); this checks that it also works.
 */

import assert from "node:assert/strict";
import { test } from "node:test";

import type { CallOptions, Client, MethodDesc, Selector, SubscribeOptions, Subscription, TopicDesc } from "@rpcgen/client";

import { ts_names } from "../gen/names/index.js";

const n = ts_names.default;

test("awkward names round-trip", () => {
  const awkward = new n.AwkwardT({
    key: "k",
    builder: 1,
    bb: 2,
    bbPos: 3,
    _init: 4,
    unpack: "five",
    unpackTo: 6,
    pack_: [7],
    toBytes_: new n.builderT({ builder: 8, bb: 9, pack_: 10 }),
    constructor_: n.Kind.toString,
    enum: new n.ObjectT({ n: 11 }),
    delete: [{ type: n.Any.BigInt, value: new n.BigIntT({ n: 12 }) }, null, { type: n.Any.Text, value: "t" }],
    typeof: { type: n.Any.builder, value: new n.builderT({ builder: 13 }) },
    data: [new n.BigIntT({ n: 14 })],
    numElems: 15,
    offset: 16n,
    index: 17,
    obj: new n.PromiseT({ n: 18 }),
  });
  const holder = new n.HolderT({ items: [awkward, new n.AwkwardT({ key: "a" })] });
  const read = n.Holder.fromBytes(holder.toBytes());
  // `pack` sorted the items by key.
  assert.deepStrictEqual(read.unpack(), new n.HolderT({ items: [new n.AwkwardT({ key: "a" }), awkward] }));
  const item = read.itemsByKey("k");
  assert.ok(item);
  assert.equal(item.builder(), 1);
  assert.equal(item.bb_(), 2, "a field `bb` does not replace the reader's `bb`");
  assert.equal(item.unpack_(), "five");
  assert.equal(item.toBytes()?.builder(), 8);
  assert.equal(item.constructor_(), n.Kind.toString);
  assert.equal(item.typeofAsBuilder()?.builder(), 13);
  assert.equal(item.deleteAsText(2), "t");
  assert.equal(n.Kind[n.Kind.__proto___], "__proto___");
});

test("a service's awkward members", async () => {
  const seen: { method?: MethodDesc; topic?: TopicDesc; key?: string; selector?: Selector }[] = [];
  const reply = new n.HolderT().toBytes();
  const fake = {
    call: (method: MethodDesc, _r: Uint8Array, _o?: CallOptions) => (seen.push({ method }), Promise.resolve(reply)),
    send: (method: MethodDesc, _r: Uint8Array, _o?: CallOptions) => (seen.push({ method }), Promise.resolve()),
    publish: (topic: TopicDesc, key: string, _p: Uint8Array, _o?: CallOptions) => (seen.push({ topic, key }), Promise.resolve()),
    subscribe: <T>(topic: TopicDesc, selector: Selector, _o: SubscribeOptions<T>) =>
      (seen.push({ topic, selector }), Promise.resolve({} as Subscription<T>)),
  };
  const client = new n.ThenableClient(fake as unknown as Client);
  // A method `then` is `then_`: a client must not look like a promise.
  assert.equal("then" in client, false);
  assert.equal(await Promise.resolve(client), client);
  await client.constructor_(new n.HolderT());
  await client.then_(new n.HolderT());
  assert.deepEqual(seen.map((s) => s.method?.name), ["ts_names.default.Thenable.constructor", "ts_names.default.Thenable.then"]);
  await client.publishOptions("o", new n.HolderT());
  await client.publishRequest(7n, new n.HolderT());
  await client.subscribeRequestAll();
  assert.deepEqual(seen.slice(2).map((s) => s.key ?? s.selector), ["o", "7", { allKeys: true }]);
});

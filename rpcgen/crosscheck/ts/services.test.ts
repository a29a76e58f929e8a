/**
 * The generated service stubs, called through a fake `Client` that records what it is asked and
 * answers what the test says: method and topic ids, the bytes of requests and events, reply
 * decoding, `DATA_LOSS` for a reply that does not verify, keys (strings and integers, in
 * decimal), selectors, options, and the error recogniser. The network is the client's business
 * and is tested with the client, against a real gateway.
 */

import assert from "node:assert/strict";
import { test } from "node:test";

import { Builder } from "flatbuffers";
import {
  type CallOptions,
  type Client,
  Code,
  type MethodDesc,
  RpcError,
  type Selector,
  type SubscribeOptions,
  type Subscription,
  type TopicDesc,
} from "@rpcgen/client";
import { VerifyError } from "@rpcgen/client/verify";

import { Blob, BlobT, Echo, EchoClient, echoError } from "../gen/echo/examples/echo.js";
import {
  ReplySum,
  ReplySumT,
  RequestSum,
  RequestSubT,
  RequestSumT,
  SomeApi,
  SomeApiClient,
  someApiError,
  Total,
  TotalT,
} from "../gen/some_api/examples/some_api.js";
import { EmptyT, OrderT, Receipt, ReceiptT, Shop, ShopClient, shopError, Stock, StockT } from "../gen/shop/shop.js";
import { EntryT } from "../gen/shop/shop/audit.js";

/** FNV-1a over the UTF-8 bytes of a qualified name: how rpcgen derives ids (rpcgen/src/ids.rs). */
function fnv1a(name: string): number {
  let hash = 0x811c9dc5;
  for (const byte of new TextEncoder().encode(name)) {
    hash ^= byte;
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash >>> 0;
}

type Recorded =
  | { kind: "call" | "send"; method: MethodDesc; request: Uint8Array; options: CallOptions | undefined }
  | { kind: "publish"; topic: TopicDesc; key: string; payload: Uint8Array; options: CallOptions | undefined }
  | { kind: "subscribe"; topic: TopicDesc; selector: Selector; decode: (payload: Uint8Array) => unknown; options: object };

/** What a stub needs of a `Client`, recording every use and answering calls with `reply`. */
class FakeClient {
  readonly seen: Recorded[] = [];
  reply: Uint8Array = new Uint8Array(0);

  call(method: MethodDesc, request: Uint8Array, options?: CallOptions): Promise<Uint8Array> {
    this.seen.push({ kind: "call", method, request, options });
    return Promise.resolve(this.reply);
  }

  send(method: MethodDesc, request: Uint8Array, options?: CallOptions): Promise<void> {
    this.seen.push({ kind: "send", method, request, options });
    return Promise.resolve();
  }

  publish(topic: TopicDesc, key: string, payload: Uint8Array, options?: CallOptions): Promise<void> {
    this.seen.push({ kind: "publish", topic, key, payload, options });
    return Promise.resolve();
  }

  subscribe<T>(topic: TopicDesc, selector: Selector, options: SubscribeOptions<T>): Promise<Subscription<T>> {
    this.seen.push({ kind: "subscribe", topic, selector, decode: options.decode, options });
    const subscription: Subscription<T> = {
      close: () => {},
      ended: Promise.resolve(undefined),
      [Symbol.asyncIterator]: () => ({ next: () => Promise.resolve({ done: true, value: undefined }) }),
    };
    return Promise.resolve(subscription);
  }

  close(): Promise<void> {
    return Promise.resolve();
  }

  last(): Recorded {
    const last = this.seen.at(-1);
    assert.ok(last, "the stub did not use the client");
    return last;
  }
}

test("descriptors carry the stable ids and names", () => {
  assert.equal(SomeApi.name, "examples.some_api.SomeApi");
  assert.equal(SomeApi.methods.sum.id, fnv1a("examples.some_api.SomeApi.sum"));
  assert.equal(SomeApi.methods.sum.name, "examples.some_api.SomeApi.sum");
  assert.equal(SomeApi.methods.sum.idempotent, true);
  assert.equal(SomeApi.methods.sub.idempotent, false);
  assert.equal(SomeApi.topics.pub.id, fnv1a("examples.some_api.SomeApi.pub"));
  assert.equal(SomeApi.errors.Overflow.id, fnv1a("examples.some_api.SomeApi.Overflow"));
  assert.equal(SomeApi.errors.Overflow.code, Code.OUT_OF_RANGE);
  assert.equal(Echo.methods.echo.id, fnv1a("examples.echo.Echo.echo"));
  // `(id: 7)` pins an id.
  assert.equal(Shop.methods.ping.id, 7);
  assert.equal(Shop.errors.NoSuchItem.code, Code.NOT_FOUND);
});

test("a call sends the method's id and the request's bytes, and verifies and reads the reply", async () => {
  const fake = new FakeClient();
  const api = new SomeApiClient(fake as unknown as Client, { timeoutMs: 500 });
  fake.reply = new ReplySumT({ sum: 42n }).toBytes();
  const reply: ReplySum = await api.sum(new RequestSumT({ a: 40n, b: 2n }), { timeoutMs: 100 });
  assert.equal(reply.sum(), 42n);
  assert.deepEqual(reply.unpack(), new ReplySumT({ sum: 42n }));
  const sent = fake.last();
  assert.equal(sent.kind, "call");
  if (sent.kind !== "call") return;
  assert.equal(sent.method.id, fnv1a("examples.some_api.SomeApi.sum"));
  assert.deepEqual(sent.options, { timeoutMs: 100 });
  // The request's bytes are the table as the flatbuffers builder writes it by hand (`a` in
  // slot 0, `b` in slot 1; largest fields first, so `b` then `a`).
  const builder = new Builder();
  builder.startObject(2);
  builder.addFieldInt64(1, 2n, 0n);
  builder.addFieldInt64(0, 40n, 0n);
  builder.finish(builder.endObject());
  assert.deepEqual(sent.request, builder.asUint8Array());
  assert.equal(RequestSum.fromBytes(sent.request).a(), 40n);

  // The client's default options apply when the call gives none.
  await api.sum(new RequestSumT({ a: 1n }));
  const second = fake.last();
  assert.ok(second.kind === "call" && second.options?.timeoutMs === 500);

  // Bytes are sent as they are.
  const raw = new RequestSumT({ a: 7n, b: 8n }).toBytes();
  await api.sum(raw);
  const third = fake.last();
  assert.ok(third.kind === "call" && third.request === raw);
});

test("a reply that does not verify rejects with DATA_LOSS", async () => {
  const fake = new FakeClient();
  const api = new SomeApiClient(fake as unknown as Client);
  for (const reply of [new Uint8Array([1, 2, 3]), new Uint8Array([0xff, 0, 0, 0, 0, 0, 0, 0])]) {
    fake.reply = reply;
    await assert.rejects(api.sum(new RequestSumT({ a: 1n, b: 2n })), (error: unknown) => {
      assert.ok(error instanceof RpcError, `not an RpcError: ${String(error)}`);
      assert.equal(error.code, Code.DATA_LOSS);
      assert.equal(error.retryable, false);
      assert.match(error.message, /the reply of examples\.some_api\.SomeApi\.sum is not a valid examples\.some_api\.ReplySum: ReplySum/);
      assert.ok(error.cause instanceof VerifyError);
      return true;
    });
  }
  // A reply of another type fails too: `Receipt` (a ulong where `Order` has its required
  // string `item`) is not an `Order`, and neither is an empty table.
  const shop = new ShopClient(fake as unknown as Client);
  for (const [reply, why] of [
    [new ReceiptT({ id: 5n }).toBytes(), /shop\.Order: Order\.item: /],
    [new EmptyT().toBytes(), /shop\.Order: Order\.item: required field `item` is missing/],
  ] as const) {
    fake.reply = reply;
    await assert.rejects(shop.get(new ReceiptT({ id: 5n })), (error: unknown) => {
      assert.ok(error instanceof RpcError && error.code === Code.DATA_LOSS, String(error));
      assert.match(error.message, why);
      return true;
    });
  }
});

test("a `-> void` method is sent fire-and-forget and resolves to nothing", async () => {
  const fake = new FakeClient();
  const api = new SomeApiClient(fake as unknown as Client, { timeoutMs: 300 });
  const result: void = await api.sub(new RequestSubT({ amount: 5n }));
  assert.equal(result, undefined);
  const sent = fake.last();
  assert.ok(sent.kind === "send", `sent with ${sent.kind}`);
  if (sent.kind !== "send") return;
  assert.equal(sent.method.id, fnv1a("examples.some_api.SomeApi.sub"));
  assert.equal(sent.options?.timeoutMs, 300);
  assert.equal(RequestSubT.fromBytes(sent.request).amount, 5n);
  const shop = new ShopClient(fake as unknown as Client);
  await shop.log(new EntryT({ text: "audit" }));
  assert.ok(fake.last().kind === "send");
});

test("echo returns the request's bytes", async () => {
  const fake = new FakeClient();
  const echo = new EchoClient(fake as unknown as Client);
  const data = new Uint8Array([0, 1, 2, 255]);
  fake.reply = new BlobT({ data }).toBytes();
  const blob: Blob = await echo.echo(new BlobT({ data }));
  assert.deepEqual(blob.dataArray(), data);
  assert.deepEqual(blob.unpack().data, data);
});

test("unkeyed topics publish under the empty key and subscribe with `unkeyed`", async () => {
  const fake = new FakeClient();
  const api = new SomeApiClient(fake as unknown as Client, { timeoutMs: 250 });
  await api.publishPub(new TotalT({ value: -5n, changes: 1n }));
  const published = fake.last();
  assert.ok(published.kind === "publish");
  if (published.kind !== "publish") return;
  assert.equal(published.topic.id, fnv1a("examples.some_api.SomeApi.pub"));
  assert.equal(published.key, "");
  assert.equal(Total.fromBytes(published.payload).value(), -5n);

  await api.subscribePub({ timeoutMs: 10 });
  const subscribed = fake.last();
  assert.ok(subscribed.kind === "subscribe");
  if (subscribed.kind !== "subscribe") return;
  assert.deepEqual(subscribed.selector, { unkeyed: true });
  assert.equal((subscribed.options as { timeoutMs?: number }).timeoutMs, 10);
  // Events are verified before they become messages; one that does not verify throws, which
  // makes the client skip it (and report it to `onDecodeError`).
  const event = subscribed.decode(new TotalT({ value: 3n }).toBytes());
  assert.ok(event instanceof Total && event.value() === 3n);
  assert.throws(() => subscribed.decode(new Uint8Array([9, 9])), VerifyError);
});

test("keyed topics take their key, as text for integers, and subscribe to one key or all", async () => {
  const fake = new FakeClient();
  const shop = new ShopClient(fake as unknown as Client);
  const stock = new StockT({ item: "apple", level: 3 });
  await shop.publishStock("apple", stock);
  assert.deepEqual(pick(fake.last()), { kind: "publish", topic: Shop.topics.stock.id, key: "apple" });
  await shop.subscribeStock("apple");
  assert.deepEqual(pick(fake.last()), { kind: "subscribe", topic: Shop.topics.stock.id, selector: { key: "apple" } });
  await shop.subscribeStockAll();
  assert.deepEqual(pick(fake.last()), { kind: "subscribe", topic: Shop.topics.stock.id, selector: { allKeys: true } });
  const decoded = (fake.last() as { decode: (p: Uint8Array) => unknown }).decode(stock.toBytes());
  assert.ok(decoded instanceof Stock && decoded.item() === "apple");

  // `pub[shelf: ushort]`: numbers or bigints, written in decimal.
  await shop.publishPub(7, stock);
  assert.equal(keyOf(fake.last()), "7");
  await shop.subscribePub(65535n);
  assert.deepEqual(pick(fake.last()).selector, { key: "65535" });
  await assert.rejects(shop.publishPub(65536, stock), RangeError);
  await assert.rejects(shop.publishPub(-1, stock), RangeError);
  await assert.rejects(shop.publishPub(1.5, stock), RangeError);

  // `notes[message: long]`: the key is called `key` (it would meet the message's name).
  await shop.publishNotes(-3n, new EntryT({ text: "x" }));
  assert.equal(keyOf(fake.last()), "-3");
  await shop.publishNotes(-9223372036854775808n, new EntryT({ text: "x" }));
  assert.equal(keyOf(fake.last()), "-9223372036854775808");
  await assert.rejects(shop.publishNotes(2n ** 63n, new EntryT()), RangeError);
  await assert.rejects(shop.publishNotes(2 ** 60, new EntryT()), RangeError, "numbers past 2^53 are not exact");

  // `tags[type: string]`.
  await shop.subscribeTags("red");
  assert.deepEqual(pick(fake.last()).selector, { key: "red" });
  await shop.publishNews(new EntryT({ text: "n" }));
  assert.equal(keyOf(fake.last()), "");
});

test("the error recogniser names the declared error an RpcError carries", () => {
  const overflow = new RpcError(Code.OUT_OF_RANGE, "too big", { errorId: SomeApi.errors.Overflow.id });
  assert.equal(someApiError(overflow), "Overflow");
  assert.equal(someApiError(new RpcError(Code.OUT_OF_RANGE, "other")), undefined);
  assert.equal(someApiError(new Error("not an rpc error")), undefined);
  assert.equal(someApiError(undefined), undefined);
  assert.equal(shopError(new RpcError(Code.NOT_FOUND, "x", { errorId: Shop.errors.NoSuchItem.id })), "NoSuchItem");
  assert.equal(shopError(new RpcError(Code.FAILED_PRECONDITION, "x", { errorId: Shop.errors.Self.id })), "Self");
  assert.equal(shopError(overflow), undefined);
  const none: undefined = echoError(overflow);
  assert.equal(none, undefined);
});

test("requests of every stub encode as their table", async () => {
  const fake = new FakeClient();
  const shop = new ShopClient(fake as unknown as Client);
  fake.reply = new ReceiptT({ id: 12n }).toBytes();
  const receipt: Receipt = await shop.place(new OrderT({ item: "pear", count: 2 }));
  assert.equal(receipt.id(), 12n);
  const sent = fake.last();
  assert.ok(sent.kind === "call" && sent.method.id === fnv1a("shop.Shop.place"));
  fake.reply = new EmptyT().toBytes();
  await shop.match(new EmptyT());
  assert.ok(fake.last().kind === "call");
});

function pick(r: Recorded): { kind: string; topic: number; key?: string; selector?: Selector } {
  if (r.kind === "send") return { kind: r.kind, topic: r.method.id };
  if (r.kind === "publish") return { kind: r.kind, topic: r.topic.id, key: r.key };
  if (r.kind === "subscribe") return { kind: r.kind, topic: r.topic.id, selector: r.selector };
  return { kind: r.kind, topic: r.method.id };
}

function keyOf(r: Recorded): string | undefined {
  return r.kind === "publish" ? r.key : undefined;
}

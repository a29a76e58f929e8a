/**
 * Required fields are typed as required, and optional ones as optional. The `@ts-expect-error`
 * lines are the proof: `tsc` fails the build when the line below one is *not* an error. The
 * tests check at run time what the types promise.
 */

import assert from "node:assert/strict";
import { test } from "node:test";

import { Builder } from "flatbuffers";
import { ABI, requireAbi } from "@rpcgen/client/verify";

import { corpus } from "../gen/corpus/index.js";
import { Equipment, type EquipmentT, Monster, MonsterT, type Vec3, Vec3T } from "../gen/monster/my/game.js";
import { WeaponT } from "../gen/monster/my/game/arms.js";
import { OrderT, StockT } from "../gen/shop/shop.js";

test("a required field must be given to the object's constructor, and is never null", () => {
  // @ts-expect-error `name` is required.
  const nameless = new MonsterT({ mana: 3 });
  // @ts-expect-error `name` cannot be null.
  new MonsterT({ name: null });
  // @ts-expect-error `item` is required.
  new OrderT({ count: 2 });
  // @ts-expect-error `by_id`, a required vector, is required.
  new corpus.attrs.AttrsT({ count: 1 });
  const monster = new MonsterT({ name: "orc" });
  const name: string = monster.name;
  const other = new MonsterT({ name: "elf" });
  // @ts-expect-error the object's required field cannot be set to null either.
  other.name = null;
  assert.equal(name, "orc");
  // At run time, a required field that was left out (by ignoring the type error) fails `pack`.
  assert.throws(() => nameless.toBytes(), /field 10 must be set/);
});

test("createX requires the required fields", () => {
  const builder = new Builder();
  assert.throws(
    // @ts-expect-error `name` is required.
    () => Monster.createMonster(builder, { mana: 3 }),
    /field 10 must be set/,
  );
  builder.clear();
  const name = builder.createString("orc");
  const root = Monster.createMonster(builder, { name, mana: 3, pos: new Vec3T({ x: 1 }) });
  builder.finish(root);
  const monster = Monster.fromBytes(builder.asUint8Array());
  assert.equal(monster.mana(), 3);
  assert.equal(monster.pos()?.x(), 1);
});

test("readers type required fields as present and optional ones as nullable", () => {
  const bytes = new MonsterT({
    name: "orc",
    equipped: { type: Equipment.Weapon, value: new WeaponT({ name: "axe" }) },
  }).toBytes();
  const monster = Monster.fromBytes(bytes);
  const name: string = monster.name();
  // @ts-expect-error `pos` is optional: the accessor may return null.
  const pos: Vec3 = monster.pos();
  // @ts-expect-error `shield` is an optional scalar (`= null`).
  const shield: number = monster.shield();
  const mana: number = monster.mana();
  const big: bigint = monster.big();
  const title: string = monster.title();
  assert.equal(name, "orc");
  assert.equal(pos, null);
  assert.equal(shield, null);
  assert.equal(mana, 150);
  assert.equal(big, 18446744073709551615n);
  assert.equal(title, "nobody");
  const stock = StockT.fromBytes(new StockT({ item: "apple", level: 3 }).toBytes());
  const item: string = stock.item;
  assert.equal(item, "apple");
});

test("union values are typed by their tag", () => {
  const monster = new MonsterT({ name: "orc", equipped: { type: Equipment.Point, value: new Vec3T({ x: 2 }) } });
  // @ts-expect-error a `Weapon` tag needs a `WeaponT` value.
  const wrong: EquipmentT = { type: Equipment.Weapon, value: new Vec3T() };
  assert.ok(wrong);
  const read = Monster.fromBytes(monster.toBytes()).unpack();
  if (read.equipped?.type === Equipment.Point) {
    const x: number = read.equipped.value.x;
    assert.equal(x, 2);
  } else {
    assert.fail(`expected a Point, got ${JSON.stringify(read.equipped)}`);
  }
});

test("code generated for another runtime version does not compile, nor load", () => {
  requireAbi(ABI);
  // @ts-expect-error generated modules call `requireAbi(N)` with the version they were made for.
  assert.throws(() => requireAbi(2), /regenerate it with the matching rpcgen/);
});

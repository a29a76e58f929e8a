/**
 * What the generated readers and objects promise beyond the corpus cross-checks: a round trip
 * keeps everything (unions and vectors of unions with empty elements, structs with arrays,
 * 64-bit values, NaN and -0.0, nested buffers), keyed vectors are sorted by `pack` and searched
 * by key in UTF-8 order, defaults read as the schema says, typed arrays work whatever the
 * buffer's alignment in memory, strings keep a leading U+FEFF, and root-type helpers (file
 * identifiers, size prefixes) work.
 */

import assert from "node:assert/strict";
import { test } from "node:test";

import { Builder, ByteBuffer, Encoding } from "flatbuffers";

import { corpus } from "../gen/corpus/index.js";
import {
  Abilities,
  Color,
  Equipment,
  Monster,
  MonsterT,
  PathT,
  rootAsMonster,
  sizePrefixedRootAsMonster,
  StatT,
  Vec3T,
} from "../gen/monster/my/game.js";
import { Weapon, WeaponT } from "../gen/monster/my/game/arms.js";

function richMonster(): MonsterT {
  return new MonsterT({
    pos: new Vec3T({ x: 1.5, y: -0, z: Number.NaN }),
    mana: -7,
    name: "orc \u{1f600}",
    inventory: new Uint8Array([0, 1, 255]),
    color: Color.Red,
    abilities: Abilities.Fly | Abilities.Burrow,
    weapons: [new WeaponT({ name: "axe", damage: 9 }), new WeaponT()],
    equipped: { type: Equipment.Label, value: "shiny" },
    loot: [
      { type: Equipment.Weapon, value: new WeaponT({ name: "bow" }) },
      null,
      { type: Equipment.Point, value: new Vec3T({ x: 2 }) },
      { type: Equipment.Label, value: "" },
      { type: Equipment.Stat, value: new StatT({ name: "s", value: -1n }) },
    ],
    path: new PathT({
      start: new Vec3T({ x: 3 }),
      steps: [1, -2, 3],
      colors: [Color.Green, Color.Blue],
      corners: [new Vec3T({ y: 4 }), new Vec3T({ z: 5 })],
      flag: true,
    }),
    stats: [new StatT({ name: "a", value: 9223372036854775807n, count: 65535 }), new StatT({ name: "b" })],
    tags: ["", "x", "\u{feff}y"],
    title: "boss",
    scores: [-2147483648, 0, 2147483647],
    shield: -0,
    big: 0n,
    small: 9223372036854775807n,
    unknown: 1,
    child: new MonsterT({ name: "kid", huge: 3 }),
    bytes: new WeaponT({ name: "nested", damage: 1 }).toBytes(),
    points: [new Vec3T({ x: 1 }), new Vec3T({ x: 2 })],
  });
}

test("unpack(pack(x)) gives back x", () => {
  const monster = richMonster();
  const bytes = monster.toBytes();
  const read = Monster.fromBytes(bytes);
  assert.deepStrictEqual(read.unpack(), monster);
  const into = new MonsterT({ name: "overwritten" });
  read.unpackTo(into);
  assert.deepStrictEqual(into, monster);
  // The defaults of an empty object read back as they were.
  const empty = new MonsterT({ name: "" });
  assert.deepStrictEqual(Monster.fromBytes(empty.toBytes()).unpack(), empty);
});

test("readers see what was written", () => {
  const read = Monster.fromBytes(richMonster().toBytes());
  assert.equal(read.name(), "orc \u{1f600}");
  assert.deepEqual(read.name(Encoding.UTF8_BYTES), new TextEncoder().encode("orc \u{1f600}"));
  assert.equal(read.equippedType(), Equipment.Label);
  assert.equal(read.equipped(), "shiny");
  assert.equal(read.equippedAsLabel(), "shiny");
  assert.equal(read.equippedAsWeapon(), null);
  assert.equal(read.lootLength(), 5);
  assert.equal(read.lootAsWeapon(0)?.name(), "bow");
  assert.equal(read.loot(1), null);
  assert.equal(read.lootType(1), Equipment.NONE);
  assert.equal(read.lootAsPoint(2)?.x(), 2);
  assert.equal(read.loot(3), "");
  assert.equal(read.loot(5), null, "an index past the end reads nothing");
  assert.equal(read.weapons(-1), null);
  assert.equal(read.weapons(1)?.damage(), 5, "a default");
  assert.equal(read.path()?.steps(1), -2);
  assert.equal(read.path()?.steps(3), null);
  assert.equal(read.path()?.corners(1)?.z(), 5);
  assert.equal(read.path()?.flag(), true);
  assert.equal(read.tags(2), "\u{feff}y", "a leading U+FEFF is kept");
  assert.deepEqual([...(read.scoresArray() ?? [])], [-2147483648, 0, 2147483647]);
  assert.equal(read.bytesNestedFlatbuffer()?.name(), "nested");
  assert.ok(Object.is(read.shield(), -0));
  assert.equal(read.child()?.name(), "kid");
  assert.equal(read.child()?.huge(), 3);
  assert.equal(read.child()?.child(), null);
});

test("defaults read as the schema says", () => {
  const read = Monster.fromBytes(new MonsterT({ name: "x" }).toBytes());
  assert.equal(read.mana(), 150);
  assert.equal(read.color(), Color.Blue);
  assert.equal(read.abilities(), Abilities.Fly);
  assert.equal(read.shield(), null);
  assert.equal(read.big(), 18446744073709551615n);
  assert.equal(read.small(), -9223372036854775808n);
  assert.equal(read.far(), Infinity);
  assert.equal(read.near(), -Infinity);
  assert.ok(Number.isNaN(read.unknown()));
  // `float` defaults are the stored `f32` values: 0.1 as a float, 1e39 rounds to infinity.
  assert.equal(read.tenth(), Math.fround(0.1));
  assert.equal(read.huge(), Infinity);
  assert.equal(read.exact(), 16777216);
  assert.equal(read.title(), "nobody");
  assert.deepEqual(read.title(Encoding.UTF8_BYTES), new TextEncoder().encode("nobody"));
  assert.deepEqual([...read.scoresArray()], []);
  assert.equal(read.inventoryArray(), null);
  // Values equal to the default are not written, so reading them is the same.
  const written = new MonsterT({ name: "x", tenth: Math.fround(0.1), mana: 150 }).toBytes();
  assert.equal(written.length, new MonsterT({ name: "x" }).toBytes().length);
});

test("64-bit enums and bit flags keep every bit", () => {
  const { Enums, EnumsT, Wide, ULong, Perm } = corpus.enums;
  const defaults = Enums.fromBytes(new EnumsT().toBytes());
  assert.equal(defaults.wide(), Wide.High);
  assert.equal(defaults.wide(), 1n << 63n);
  assert.equal(defaults.aUlong(), ULong.Max);
  assert.equal(defaults.perm(), Perm.Read | Perm.Write);
  const all = new EnumsT({ wide: Wide.Low | Wide.Mid | Wide.High, perm: Perm.Exec, shorts: [corpus.enums.Short.MinusTwo] });
  assert.deepStrictEqual(Enums.fromBytes(all.toBytes()).unpack(), all);
});

test("pack sorts keyed vectors, and lookups find every key in UTF-8 order", () => {
  const names = ["\u{ffff}", "b", "\u{10000}", "a", "", "ab", "\u{e000}"];
  const monster = new MonsterT({ name: "m", stats: names.map((name, i) => new StatT({ name, count: i })) });
  const read = Monster.fromBytes(monster.toBytes());
  const order = Array.from({ length: read.statsLength() }, (_, i) => read.stats(i)?.name());
  const bytes = (s: string) => new TextEncoder().encode(s);
  assert.deepEqual(order, [...names].sort((a, b) => Buffer.compare(bytes(a), bytes(b))));
  names.forEach((name, i) => assert.equal(read.statsByKey(name)?.count(), i, `looking up ${JSON.stringify(name)}`));
  assert.equal(read.statsByKey("zz"), null);
  // A scalar key.
  const { Attrs, AttrsT, ByIdT } = corpus.attrs;
  const attrs = Attrs.fromBytes(new AttrsT({ byId: [30, 10, 20].map((id) => new ByIdT({ id, note: `n${id}` })) }).toBytes());
  assert.deepEqual([0, 1, 2].map((i) => attrs.byId(i)?.id()), [10, 20, 30]);
  assert.equal(attrs.byIdByKey(20)?.note(), "n20");
  assert.equal(attrs.byIdByKey(25), null);
});

test("pack sorts vectors keyed by a struct field by field, as the Rust pack does, and lookups find them", () => {
  const { ByKeyT, Grade, KeyT, Keys, KeysT, PartT } = corpus.keys;
  const part = (tag: number, grade: corpus.keys.Grade) => new PartT({ tag, grade });
  const zero = () => part(0, Grade.Zero);
  const key = (major: number, at: corpus.keys.PartT, bytes: number[], weight: number, second: number) =>
    new KeyT({ major, part: at, bytes, weight, parts: [zero(), part(second, Grade.Zero)] });
  // Each differs from "b" in one field; the names give the order expected (as in the Rust test
  // `struct_keys_sort_field_by_field_and_look_up`).
  const keyed: [string, corpus.keys.KeyT][] = [
    ["b", key(2, zero(), [0, 0, 0, 0], 0, 0)],
    ["z", key(3_000_000_000, zero(), [0, 0, 0, 0], 0, 0)],
    ["c", key(2, zero(), [0, 0, 0, 1], 0, 0)],
    ["a3", key(2, part(0, Grade.Low), [9, 9, 9, 9], 0, 0)],
    ["a", key(1, part(5, Grade.High), [9, 9, 9, 9], 9, 9)],
    ["b2", key(2, zero(), [0, 0, 0, 0], 0, 1)],
    ["a4", key(2, zero(), [0, 0, 0, 0], -1, 0)],
    ["a2", key(2, part(-1, Grade.High), [9, 9, 9, 9], 9, 9)],
  ];
  const object = new KeysT({ byKey: keyed.map(([name, id]) => new ByKeyT({ id, name })) });
  const read = Keys.fromBytes(object.toBytes());
  const order = Array.from({ length: read.byKeyLength() }, (_, i) => read.byKey(i)?.name());
  assert.deepEqual(order, ["a", "a2", "a3", "a4", "b", "b2", "c", "z"]);
  for (const [name, id] of keyed) assert.equal(read.byKeyByKey(id)?.name(), name, `looking up ${name}`);
  assert.equal(read.byKeyByKey(key(2, zero(), [0, 0, 0, 0], 0.5, 0)), null);
});

test("typed arrays and nested buffers work wherever the bytes sit in memory", () => {
  const bytes = richMonster().toBytes();
  for (const shift of [0, 1, 2, 3, 5]) {
    const memory = new Uint8Array(bytes.length + shift);
    memory.set(bytes, shift);
    const read = Monster.fromBytes(memory.subarray(shift));
    assert.deepEqual([...(read.scoresArray() ?? [])], [-2147483648, 0, 2147483647], `shifted by ${shift}`);
    assert.deepEqual([...(read.inventoryArray() ?? [])], [0, 1, 255]);
    assert.equal(read.bytesNestedFlatbuffer()?.damage(), 1);
  }
});

test("root-type helpers: identifiers, size prefixes, verified roots", () => {
  const builder = new Builder();
  Monster.finishMonsterBuffer(builder, richMonster().pack(builder));
  const bytes = builder.asUint8Array();
  assert.ok(Monster.bufferHasIdentifier(new ByteBuffer(bytes)));
  assert.equal(rootAsMonster(bytes).name(), "orc \u{1f600}");
  const prefixed = new Builder();
  Monster.finishSizePrefixedMonsterBuffer(prefixed, new MonsterT({ name: "p" }).pack(prefixed));
  const prefixedBytes = prefixed.asUint8Array();
  assert.equal(sizePrefixedRootAsMonster(prefixedBytes).name(), "p");
  assert.throws(() => rootAsMonster(prefixedBytes));
  assert.equal(MonsterT.fromBytes(new MonsterT({ name: "t" }).toBytes()).name, "t");
  assert.equal(Weapon.fromBytes(new WeaponT({ name: "w" }).toBytes()).name(), "w");
});

test("unions with a declared tag type: flatc's TypeScript reads our buffers, and ours reads flatc's", async () => {
  const { CircleT, Huge, Small, Square, SquareT, Tags, TagsT, Wide } = corpus.tags;
  const object = new TagsT({
    wide: { type: Wide.Square, value: new SquareT({ side: -5 }) },
    small: { type: Small.Circle, value: new CircleT({ radius: 1.5 }) },
    wides: [
      { type: Wide.Circle, value: new CircleT({ radius: 0.25 }) },
      { type: Wide.Square, value: new SquareT({ side: 1 }) },
    ],
    smalls: [{ type: Small.Square, value: new SquareT({ side: 2 }) }],
    huge: { type: Huge.Square, value: new SquareT({ side: 7 }) },
  });
  assert.deepEqual([Wide.Circle, Wide.Square, Small.Circle, Small.Square, Huge.Square], [555, 66666, -3, -2, 4294967297]);
  const bytes = object.toBytes();
  const read = Tags.fromBytes(bytes);
  assert.deepEqual(read.unpack(), object);
  assert.equal(read.hugeType(), Huge.Square);
  assert.ok(read.wide() instanceof Square, "the tag says Square");

  // flatc's TypeScript (for the schema without its `ulong` union, the table's last field).
  type Reader = Record<string, (...args: unknown[]) => unknown>;
  const flatc = (await import(new URL("../flatc/union_tags/corpus/tags.js", import.meta.url).href)) as Record<
    string,
    Record<string, (...args: unknown[]) => unknown> & (new () => Reader)
  >;
  const theirs = flatc["Tags"]!["getRootAsTags"]!(new ByteBuffer(bytes)) as Reader;
  assert.equal(theirs["wideType"]!(), 66666);
  assert.equal((theirs["wide"]!(new flatc["Square"]!()) as Reader)["side"]!(), -5);
  assert.equal(theirs["smallType"]!(), -3);
  assert.deepEqual([theirs["widesType"]!(0), theirs["widesType"]!(1), theirs["smallsType"]!(0)], [555, 66666, -2]);
  assert.equal((theirs["smalls"]!(0, new flatc["Square"]!()) as Reader)["side"]!(), 2);

  // flatc's object API writes the same object; ours verifies and reads it.
  const builder = new Builder(64);
  const flatcObject = theirs["unpack"]!() as { pack(b: Builder): number };
  builder.finish(flatcObject.pack(builder));
  const fromFlatc = Tags.fromBytes(builder.asUint8Array()).unpack();
  assert.deepEqual(fromFlatc, new TagsT({ ...object, huge: null }));
});

//! us → flatc: objects built in Rust with known values, written by our `pack()`, must be printed
//! by flatc as the JSON written here.
//!
//! Objects are built from `Default::default()` and assigned field by field, as a user outside the
//! generated crate must: flatc's object types are `#[non_exhaustive]`.

// Clippy prefers struct literals, which `#[non_exhaustive]` types do not allow.
#![allow(clippy::field_reassign_with_default)]

use gateway_core::flatbuffers::FlatBufferBuilder;
use rpcgen_crosscheck::corpus;
use serde_json::{Value, json};

use crate::json;
use crate::runner::{Flatc, corpus_dir};

/// Writes `object` as the root of a buffer with our code and returns flatc's JSON for it.
macro_rules! flatc_reads {
    ($schema:literal, $object:expr, $finish:path) => {{
        let mut fbb = FlatBufferBuilder::new();
        let root = $object.pack(&mut fbb);
        $finish(&mut fbb, root);
        flatc_json($schema, fbb.finished_data())
    }};
}

fn flatc_json(schema: &str, bytes: &[u8]) -> Value {
    let text = Flatc::locate()
        .json_from_binary(&corpus_dir().join(schema), bytes)
        .unwrap_or_else(|e| panic!("{e}"));
    json::parse(&text)
}

#[test]
fn scalars() {
    use corpus::scalars::{Level, ScalarsT, finish_scalars_buffer};
    let mut object = ScalarsT::default();
    object.a_bool = false;
    object.a_byte = 0;
    object.a_ulong = 1;
    object.a_float = -0.25;
    object.an_int64 = i64::MIN;
    object.a_uint64 = u64::MAX - 1;
    object.a_nan = 1.5;
    object.a_pos_inf = f64::NEG_INFINITY;
    object.opt_bool = Some(false);
    object.opt_ulong = Some(u64::MAX);
    object.opt_double = Some(f64::NAN);
    object.opt_level = Some(Level::Mid);
    object.level = Level::Low;
    assert_eq!(
        flatc_reads!("scalars.fbs", object, finish_scalars_buffer),
        json!({
            "a_bool": false,
            "a_byte": 0,
            "a_ulong": 1,
            "a_float": -0.25,
            "an_int64": i64::MIN,
            "a_uint64": u64::MAX - 1,
            "a_nan": 1.5,
            "a_pos_inf": "-inf",
            "opt_bool": false,
            "opt_ulong": u64::MAX,
            "opt_double": "nan",
            "opt_level": "Mid",
            "level": "Low",
        })
    );
}

/// Defaults are not written, a NaN default included: the builder leaves out the default NaN
/// (compared bit for bit: NaN equals nothing, so a comparison with `==` would write it every
/// time).
#[test]
fn scalar_defaults_are_not_written_nan_included() {
    use corpus::scalars::{ScalarsT, finish_scalars_buffer};
    assert_eq!(flatc_reads!("scalars.fbs", ScalarsT::default(), finish_scalars_buffer), json!({}));
}

#[test]
fn structs_and_arrays() {
    use corpus::structs::{
        AlignedT, ArraysT, MixedT, Shade, StructsT, TinyT, finish_structs_buffer,
    };
    let mixed = |n: i8| {
        let mut mixed = MixedT::default();
        mixed.a = n;
        mixed.b = f64::from(n) / 2.0;
        mixed.c = -i16::from(n);
        mixed.d = 1 << n;
        mixed.e = n % 2 == 0;
        mixed
    };
    let tiny = |b: u8| {
        let mut tiny = TinyT::default();
        tiny.b = b;
        tiny
    };
    let mut aligned = AlignedT::default();
    aligned.x = 1.0;
    aligned.y = 2.0;
    aligned.z = 3.0;
    let mut arrays = ArraysT::default();
    arrays.ints = [1, -2, 3];
    arrays.bytes = [5, 4, 3, 2, 1];
    arrays.shades = [Shade::Light, Shade::Dark];
    arrays.tinies = [tiny(1), tiny(2)];
    arrays.mixeds = [mixed(2), mixed(3)];
    arrays.longs = [i64::MAX, i64::MIN];
    let mut object = StructsT::default();
    object.mixed = Some(mixed(1));
    object.aligned = Some(aligned);
    object.arrays = Some(arrays);
    object.count = 7;
    object.mixeds = Some(vec![mixed(4)]);
    let mixed_json = |n: i8| json!({ "a": n, "b": f64::from(n) / 2.0, "c": -i16::from(n), "d": 1 << n, "e": n % 2 == 0 });
    assert_eq!(
        flatc_reads!("structs.fbs", object, finish_structs_buffer),
        json!({
            "mixed": mixed_json(1),
            "aligned": { "x": 1.0, "y": 2.0, "z": 3.0 },
            "arrays": {
                "ints": [1, -2, 3],
                "bytes": [5, 4, 3, 2, 1],
                "shades": ["Light", "Dark"],
                "tinies": [{ "b": 1 }, { "b": 2 }],
                "mixeds": [mixed_json(2), mixed_json(3)],
                "longs": [i64::MAX, i64::MIN],
            },
            "count": 7,
            "mixeds": [mixed_json(4)],
        })
    );
}

#[test]
fn vectors_and_strings() {
    use corpus::common::{PointT, TagT};
    use corpus::vectors::{Color, ItemT, VectorsT, finish_vectors_buffer};
    let mut point = PointT::default();
    point.x = 0.5;
    point.y = -0.5;
    let mut item = ItemT::default();
    item.name = Some("n".into());
    item.count = -1;
    let mut tag = TagT::default();
    tag.name = "t".into();
    let mut object = VectorsT::default();
    object.title = Some("Grüße 🦀".into());
    object.greeting = "hi".into();
    object.motto = String::new();
    object.bools = Some(vec![true, false]);
    object.ulongs = Some(vec![u64::MAX]);
    object.strings = Some(vec!["a".into(), String::new(), "ß\u{0}".into()]);
    object.points = Some(vec![point]);
    object.items = Some(vec![item, ItemT::default()]);
    object.tags = Some(vec![tag]);
    object.colors = Some(vec![Color::Blue, Color::Red]);
    object.none_strings = vec!["x".into()];
    assert_eq!(
        flatc_reads!("vectors.fbs", object, finish_vectors_buffer),
        json!({
            "title": "Grüße 🦀",
            "greeting": "hi",
            "motto": "",
            "bools": [true, false],
            "ulongs": [u64::MAX],
            "strings": ["a", "", "ß\u{0}"],
            "points": [{ "x": 0.5, "y": -0.5 }],
            "items": [{ "name": "n", "count": -1 }, {}],
            "tags": [{ "name": "t" }],
            "colors": ["Blue", "Red"],
            "none_ints": [],
            "none_strings": ["x"],
        })
    );
}

#[test]
fn unions_with_aliases_and_other_namespaces() {
    use corpus::common::TagT;
    use corpus::unions::{DrawingT, ShapeT, SquareT, finish_drawing_buffer};
    let mut square = SquareT::default();
    square.side = 2.5;
    let mut tag = TagT::default();
    tag.name = "other".into();
    tag.weight = 9;
    let mut object = DrawingT::default();
    object.main = ShapeT::Box(Box::new(square));
    object.backup = ShapeT::CorpusCommonTag(Box::new(tag));
    object.name = Some("drawing".into());
    assert_eq!(
        flatc_reads!("unions.fbs", object, finish_drawing_buffer),
        json!({
            "main_type": "Box",
            "main": { "side": 2.5 },
            "backup_type": "corpus_common_Tag",
            "backup": { "name": "other", "weight": 9 },
            "name": "drawing",
        })
    );
}

#[test]
fn tables_across_namespaces_and_files() {
    use corpus::common::{PointT, TagT};
    use corpus::geo::{AreaT, RectT};
    use corpus::ns::alpha::AlphaT;
    use corpus::ns::beta::BetaT;
    use corpus::ns::{WorldT, finish_world_buffer};
    let point = |x: f32, y: f32| {
        let mut point = PointT::default();
        point.x = x;
        point.y = y;
        point
    };
    let mut alpha = AlphaT::default();
    alpha.at = Some(point(1.0, 2.0));
    let mut bounds = RectT::default();
    bounds.min = point(0.0, 0.0);
    bounds.max = point(3.0, 4.0);
    let mut tag = TagT::default();
    tag.name = "t".into();
    let mut area = AreaT::default();
    area.bounds = Some(bounds);
    area.tags = Some(vec![tag]);
    let mut beta = BetaT::default();
    beta.area = Some(Box::new(area));
    let mut object = WorldT::default();
    object.alpha = Some(Box::new(alpha));
    object.beta = Some(Box::new(beta));
    object.others = Some(vec![BetaT::default()]);
    assert_eq!(
        flatc_reads!("namespaces.fbs", object, finish_world_buffer),
        json!({
            "alpha": { "at": { "x": 1.0, "y": 2.0 } },
            "beta": {
                "area": {
                    "bounds": { "min": { "x": 0.0, "y": 0.0 }, "max": { "x": 3.0, "y": 4.0 } },
                    "tags": [{ "name": "t" }],
                },
            },
            "others": [{}],
        })
    );
}

#[test]
fn attributes_ids_and_deprecated_fields() {
    use corpus::attrs::{AttrsT, ByIdT, ByNameT, OrderedT, finish_attrs_buffer};
    let by_id = |id: u32, note: Option<&str>| {
        let mut by_id = ByIdT::default();
        by_id.id = id;
        by_id.note = note.map(String::from);
        by_id
    };
    let mut by_name = ByNameT::default();
    by_name.name = "a".into();
    by_name.size = 1;
    let mut ordered = OrderedT::default();
    ordered.a = 1;
    ordered.b = 2.0;
    ordered.c = 3;
    ordered.s = Some("s".into());
    let mut object = AttrsT::default();
    object.label = Some("l".into());
    object.count = 3;
    object.by_id = vec![by_id(1, None), by_id(2, Some("two"))];
    object.by_name = Some(vec![by_name]);
    object.hash32 = 7;
    object.ordered = Some(Box::new(ordered));
    assert_eq!(
        flatc_reads!("attributes.fbs", object, finish_attrs_buffer),
        json!({
            "count": 3,
            "by_id": [{ "id": 1 }, { "id": 2, "note": "two" }],
            "label": "l",
            "by_name": [{ "name": "a", "size": 1 }],
            "hash32": 7,
            "ordered": { "a": 1, "b": 2.0, "c": 3, "s": "s" },
        })
    );
}

/// Vectors of tables keyed by a struct are written sorted field by field (unsigned and signed
/// integers, enums by value, arrays element by element, floats), which flatc's JSON shows, and
/// the generated lookup finds every element. flatc's `-b` cannot write such vectors (it aborts),
/// so this is the check of their order.
#[test]
fn struct_keys_sort_field_by_field_and_look_up() {
    use corpus::keys::{ByKeyT, Grade, KeyT, KeysT, PartT, finish_keys_buffer, root_as_keys};
    let part = |tag: i8, grade: Grade| {
        let mut p = PartT::default();
        p.tag = tag;
        p.grade = grade;
        p
    };
    let key = |major: u32, at: PartT, bytes: [u8; 4], weight: f64, second: i8| {
        let mut k = KeyT::default();
        k.major = major;
        k.part = at;
        k.bytes = bytes;
        k.weight = weight;
        k.parts = [part(0, Grade::Zero), part(second, Grade::Zero)];
        k
    };
    let zero = || part(0, Grade::Zero);
    // Each differs from "b" in one field; the names give the order expected.
    let keyed = [
        ("b", key(2, zero(), [0; 4], 0.0, 0)),
        ("z", key(3_000_000_000, zero(), [0; 4], 0.0, 0)),
        ("c", key(2, zero(), [0, 0, 0, 1], 0.0, 0)),
        ("a3", key(2, part(0, Grade::Low), [9; 4], 0.0, 0)),
        ("a", key(1, part(5, Grade::High), [9; 4], 9.0, 9)),
        ("b2", key(2, zero(), [0; 4], 0.0, 1)),
        ("a4", key(2, zero(), [0; 4], -1.0, 0)),
        ("a2", key(2, part(-1, Grade::High), [9; 4], 9.0, 9)),
    ];
    let mut object = KeysT::default();
    object.by_key = Some(
        keyed
            .iter()
            .map(|(name, k)| {
                let mut t = ByKeyT::default();
                t.id = k.clone();
                t.name = Some((*name).to_owned());
                t
            })
            .collect(),
    );
    let mut fbb = FlatBufferBuilder::new();
    let root = object.pack(&mut fbb);
    finish_keys_buffer(&mut fbb, root);
    let bytes = fbb.finished_data().to_vec();

    let printed = flatc_json("keys.fbs", &bytes);
    let names: Vec<&str> = printed["by_key"]
        .as_array()
        .expect("flatc prints the vector")
        .iter()
        .map(|t| t["name"].as_str().expect("a name"))
        .collect();
    assert_eq!(names, ["a", "a2", "a3", "a4", "b", "b2", "c", "z"]);

    let reader = root_as_keys(&bytes).expect("our buffer verifies");
    for (name, k) in &keyed {
        let found = reader.by_key_by_key(&k.pack()).expect("every key is found");
        assert_eq!(found.name(), Some(*name));
    }
    let missing = key(2, zero(), [0; 4], 0.5, 0);
    assert!(reader.by_key_by_key(&missing.pack()).is_none());

    // A NaN where two keys first differ makes them equal, whatever follows (flatc's C++).
    let nan = key(2, zero(), [0; 4], f64::NAN, 0).pack();
    let later = key(2, zero(), [0; 4], 1.0, 7).pack();
    assert_eq!(nan.key_compare(&later), std::cmp::Ordering::Equal);
    assert_eq!(later.key_compare(&nan), std::cmp::Ordering::Equal);
}

/// Unions with a declared tag type store their tags at that width (`int`: 4 bytes, `byte`: 1
/// signed, `ulong`: 8), in fields and in vectors of tags, and read them back. flatc's `-b` and
/// `--json` do not support such unions (see `schemas/corpus/union_tags.fbs`), so the layout is
/// checked here by reading the raw slots; the TypeScript checks read the same buffers with
/// flatc's TypeScript.
#[test]
fn union_tags_of_declared_types_keep_their_width() {
    use corpus::tags::{
        CircleT, Huge, HugeT, Small, SmallT, SquareT, Tags, TagsT, Wide, WideT, finish_tags_buffer,
        root_as_tags,
    };
    use gateway_core::flatbuffers::{ForwardsUOffset, Vector};
    let square = |side| {
        let mut s = SquareT::default();
        s.side = side;
        Box::new(s)
    };
    let circle = |radius| {
        let mut c = CircleT::default();
        c.radius = radius;
        Box::new(c)
    };
    assert_eq!((Wide::Circle.0, Wide::Square.0), (555_i32, 66666));
    assert_eq!((Small::Circle.0, Small::Square.0), (-3_i8, -2));
    assert_eq!((Huge::Circle.0, Huge::Square.0), (4_294_967_296_u64, 4_294_967_297));
    let mut object = TagsT::default();
    object.wide = WideT::Square(square(-5));
    object.small = SmallT::Circle(circle(1.5));
    object.huge = HugeT::Square(square(7));
    object.wides = Some(vec![WideT::Circle(circle(0.25)), WideT::Square(square(1))]);
    object.smalls = Some(vec![SmallT::Square(square(2))]);
    let mut fbb = FlatBufferBuilder::new();
    let root = object.pack(&mut fbb);
    finish_tags_buffer(&mut fbb, root);
    let bytes = fbb.finished_data();

    let reader = root_as_tags(bytes).expect("our buffer verifies");
    assert_eq!(reader.unpack(), object);
    // The raw slots: tags at their declared width.
    let table = reader._tab;
    // Safety: the buffer verified; each slot is read as the type it was written with.
    unsafe {
        assert_eq!(table.get::<i32>(Tags::VT_WIDE_TYPE, None), Some(66666));
        assert_eq!(table.get::<i8>(Tags::VT_SMALL_TYPE, None), Some(-3));
        assert_eq!(table.get::<u64>(Tags::VT_HUGE_TYPE, None), Some(4_294_967_297));
        let wides = table.get::<ForwardsUOffset<Vector<'_, i32>>>(Tags::VT_WIDES_TYPE, None);
        assert_eq!(wides.map(|v| v.iter().collect::<Vec<_>>()), Some(vec![555, 66666]));
        let smalls = table.get::<ForwardsUOffset<Vector<'_, i8>>>(Tags::VT_SMALLS_TYPE, None);
        assert_eq!(smalls.map(|v| v.iter().collect::<Vec<_>>()), Some(vec![-2]));
    }
}

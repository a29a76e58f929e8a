//! proptest strategies for the owned objects (`...T`) of every corpus root type.
//!
//! Values cover the whole range of each type, with the edges (`MIN`, `MAX`, zero) and the special
//! floats (NaN with any payload, ±infinity, -0.0, subnormals) weighted in, since plain uniform
//! draws would almost never hit them. Enums also take values their schema does not name, which
//! the generated types keep. Strings are arbitrary Unicode, NUL included.

use gateway_core::flatbuffers::FlatBufferBuilder;
use proptest::collection::vec;
use proptest::option::of;
use proptest::prelude::*;
use proptest::sample::select;
use rpcgen_crosscheck::corpus::{
    attrs, common, crlf, enums, geo, keywords, ns, rpc, scalars, structs, unions, variants, vectors,
};

/// Any integer of type `$t`, its extremes and zero often.
macro_rules! int {
    ($t:ty) => {
        prop_oneof![3 => any::<$t>(), 1 => select(vec![<$t>::MIN, 0, <$t>::MAX])]
    };
}

/// Any float of type `$t` (every bit pattern, so NaNs with any payload), the special values often.
macro_rules! float {
    ($t:ident, $bits:ty) => {
        prop_oneof![
            2 => any::<$bits>().prop_map($t::from_bits),
            1 => any::<$t>(),
            1 => select(vec![
                0.0,
                -0.0,
                $t::NAN,
                -$t::NAN,
                $t::INFINITY,
                $t::NEG_INFINITY,
                $t::MIN,
                $t::MAX,
                $t::MIN_POSITIVE,
                $t::MIN_POSITIVE / 2.0,
            ]),
        ]
    };
}

/// An enum value: a named one or any value of its representation.
macro_rules! enumeration {
    ($e:path, $repr:ty) => {
        prop_oneof![select(<$e>::ENUM_VALUES.to_vec()), any::<$repr>().prop_map($e)]
    };
}

/// Up to this many elements in a vector: enough to cover empty, one and many, small enough that
/// a case stays fast.
const MAX_LEN: usize = 6;

fn f32s() -> BoxedStrategy<f32> {
    float!(f32, u32).boxed()
}

fn f64s() -> BoxedStrategy<f64> {
    float!(f64, u64).boxed()
}

/// Arbitrary Unicode text, NUL and other control characters included.
fn text() -> BoxedStrategy<String> {
    vec(prop_oneof![6 => any::<char>(), 1 => Just('\0'), 1 => Just('\u{FFFF}')], 0..12)
        .prop_map(String::from_iter)
        .boxed()
}

/// Several keyed tables where some keys are likely equal, so sorting ties are exercised.
fn small_text() -> BoxedStrategy<String> {
    prop_oneof![text(), select(vec!["", "a", "b", "\0"]).prop_map(str::to_owned)].boxed()
}

pub(crate) fn scalars() -> BoxedStrategy<scalars::ScalarsT> {
    let level = || enumeration!(scalars::Level, i8);
    let ints = (
        (any::<bool>(), int!(i8), int!(u8), int!(i16), int!(u16), int!(i32), int!(u32)),
        (int!(i64), int!(u64), int!(i8), int!(u8), int!(i16), int!(u16), int!(i32)),
        (int!(u32), int!(i64), int!(u64), int!(i32)),
    );
    let floats = (f32s(), f64s(), f32s(), f64s(), f32s(), f64s(), f32s(), f64s());
    let optionals = (
        of(any::<bool>()),
        of(int!(i8)),
        of(int!(i32)),
        of(int!(u64)),
        of(f32s()),
        of(f64s()),
        of(level()),
        level(),
    );
    (ints, floats, optionals)
        .prop_map(|(ints, floats, optionals)| {
            let ((a_bool, a_byte, a_ubyte, a_short, a_ushort, a_int, a_uint), more, rest) = ints;
            let (a_long, a_ulong, an_int8, a_uint8, an_int16, a_uint16, an_int32) = more;
            let (a_uint32, an_int64, a_uint64, neg_hex) = rest;
            let (a_float, a_double, a_float32, a_float64, a_nan, an_inf, a_neg_inf, a_pos_inf) =
                floats;
            let (opt_bool, opt_byte, opt_int, opt_ulong, opt_float, opt_double, opt_level, level) =
                optionals;
            scalars::ScalarsT {
                a_bool,
                a_byte,
                a_ubyte,
                a_short,
                a_ushort,
                a_int,
                a_uint,
                a_long,
                a_ulong,
                a_float,
                a_double,
                an_int8,
                a_uint8,
                an_int16,
                a_uint16,
                an_int32,
                a_uint32,
                an_int64,
                a_uint64,
                a_float32,
                a_float64,
                neg_hex,
                a_nan,
                an_inf,
                a_neg_inf,
                a_pos_inf,
                opt_bool,
                opt_byte,
                opt_int,
                opt_ulong,
                opt_float,
                opt_double,
                opt_level,
                level,
            }
        })
        .boxed()
}

pub(crate) fn enums() -> BoxedStrategy<enums::EnumsT> {
    use enums::*;
    let perm = || any::<u8>().prop_map(Perm::from_bits_retain);
    let signed = (
        enumeration!(Byte, i8),
        enumeration!(Short, i16),
        enumeration!(Int, i32),
        enumeration!(Long, i64),
        enumeration!(Int8, i8),
        enumeration!(Int16, i16),
        enumeration!(Int32, i32),
        enumeration!(Int64, i64),
    );
    let unsigned = (
        enumeration!(UByte, u8),
        enumeration!(UShort, u16),
        enumeration!(UInt, u32),
        enumeration!(ULong, u64),
        enumeration!(UInt8, u8),
        enumeration!(UInt16, u16),
        enumeration!(UInt32, u32),
        enumeration!(UInt64, u64),
    );
    let flags = (
        perm(),
        any::<u64>().prop_map(Wide::from_bits_retain),
        perm(),
        of(vec(enumeration!(Short, i16), 0..MAX_LEN)),
        of(vec(perm(), 0..MAX_LEN)),
    );
    (signed, unsigned, flags)
        .prop_map(|(signed, unsigned, flags)| {
            let (a_byte, a_short, an_int, a_long, an_int8, an_int16, an_int32, an_int64) = signed;
            let (a_ubyte, a_ushort, a_uint, a_ulong, a_uint8, a_uint16, a_uint32, a_uint64) =
                unsigned;
            let (perm, wide, no_perm, shorts, perms) = flags;
            EnumsT {
                a_byte,
                a_ubyte,
                a_short,
                a_ushort,
                an_int,
                a_uint,
                a_long,
                a_ulong,
                an_int8,
                a_uint8,
                an_int16,
                a_uint16,
                an_int32,
                a_uint32,
                an_int64,
                a_uint64,
                perm,
                wide,
                no_perm,
                shorts,
                perms,
            }
        })
        .boxed()
}

fn tiny() -> BoxedStrategy<structs::TinyT> {
    int!(u8).prop_map(|b| structs::TinyT { b }).boxed()
}

fn mixed() -> BoxedStrategy<structs::MixedT> {
    (int!(i8), f64s(), int!(i16), int!(i32), any::<bool>())
        .prop_map(|(a, b, c, d, e)| structs::MixedT { a, b, c, d, e })
        .boxed()
}

fn aligned() -> BoxedStrategy<structs::AlignedT> {
    (f32s(), f32s(), f32s()).prop_map(|(x, y, z)| structs::AlignedT { x, y, z }).boxed()
}

fn arrays() -> BoxedStrategy<structs::ArraysT> {
    use proptest::array::{uniform2, uniform3, uniform5};
    (
        uniform3(int!(i32)),
        uniform5(int!(u8)),
        uniform2(enumeration!(structs::Shade, i16)),
        uniform2(tiny()),
        uniform2(mixed()),
        uniform2(int!(i64)),
    )
        .prop_map(|(ints, bytes, shades, tinies, mixeds, longs)| structs::ArraysT {
            ints,
            bytes,
            shades,
            tinies,
            mixeds,
            longs,
        })
        .boxed()
}

pub(crate) fn structs() -> BoxedStrategy<structs::StructsT> {
    let nested = (tiny(), mixed(), enumeration!(structs::Shade, i16))
        .prop_map(|(tiny, mixed, shade)| structs::NestedT { tiny, mixed, shade });
    (
        (of(mixed()), of(nested), of(aligned()), of(arrays()), int!(u16)),
        (
            of(vec(tiny(), 0..MAX_LEN)),
            of(vec(mixed(), 0..MAX_LEN)),
            of(vec(aligned(), 0..MAX_LEN)),
            of(vec(arrays(), 0..3)),
        ),
    )
        .prop_map(|((mixed, nested, aligned, arrays, count), lists)| {
            let (tinies, mixeds, aligneds, arrays_list) = lists;
            structs::StructsT {
                mixed,
                nested,
                aligned,
                arrays,
                count,
                tinies,
                mixeds,
                aligneds,
                arrays_list,
            }
        })
        .boxed()
}

fn point() -> BoxedStrategy<common::PointT> {
    (f32s(), f32s()).prop_map(|(x, y)| common::PointT { x, y }).boxed()
}

fn tag() -> BoxedStrategy<common::TagT> {
    (small_text(), int!(i32)).prop_map(|(name, weight)| common::TagT { name, weight }).boxed()
}

pub(crate) fn vectors() -> BoxedStrategy<vectors::VectorsT> {
    let item = (of(text()), int!(i64)).prop_map(|(name, count)| vectors::ItemT { name, count });
    let texts = (of(text()), text(), text(), of(vec(text(), 0..MAX_LEN)));
    let numbers = (
        of(vec(any::<u8>(), 0..MAX_LEN * 4)),
        of(vec(int!(i8), 0..MAX_LEN)),
        of(vec(any::<bool>(), 0..MAX_LEN)),
        of(vec(int!(i16), 0..MAX_LEN)),
        of(vec(int!(i32), 0..MAX_LEN)),
        of(vec(int!(u64), 0..MAX_LEN)),
        of(vec(f32s(), 0..MAX_LEN)),
        of(vec(f64s(), 0..MAX_LEN)),
    );
    let others = (
        of(vec(point(), 0..MAX_LEN)),
        of(vec(item, 0..MAX_LEN)),
        of(vec(tag(), 0..MAX_LEN)),
        of(vec(enumeration!(vectors::Color, u8), 0..MAX_LEN)),
        vec(int!(i32), 0..MAX_LEN),
        vec(text(), 0..MAX_LEN),
    );
    (texts, numbers, others)
        .prop_map(|(texts, numbers, others)| {
            let (title, greeting, motto, strings) = texts;
            let (bytes, signed_bytes, bools, shorts, ints, ulongs, floats, doubles) = numbers;
            let (points, items, tags, colors, none_ints, none_strings) = others;
            vectors::VectorsT {
                title,
                greeting,
                motto,
                bytes,
                signed_bytes,
                bools,
                shorts,
                ints,
                ulongs,
                floats,
                doubles,
                strings,
                points,
                items,
                tags,
                colors,
                none_ints,
                none_strings,
            }
        })
        .boxed()
}

fn ordered() -> BoxedStrategy<attrs::OrderedT> {
    (int!(i8), f64s(), int!(i16), of(text()))
        .prop_map(|(a, b, c, s)| attrs::OrderedT { a, b, c, s })
        .boxed()
}

/// `nested` must hold a valid `Ordered` buffer (the verifier checks it): a packed arbitrary one.
pub(crate) fn attrs() -> BoxedStrategy<attrs::AttrsT> {
    let by_id = (prop_oneof![int!(u32), 0..4u32], of(text()))
        .prop_map(|(id, note)| attrs::ByIdT { id, note });
    let by_name = (small_text(), int!(i16)).prop_map(|(name, size)| attrs::ByNameT { name, size });
    let nested = ordered().prop_map(|o| {
        let mut fbb = FlatBufferBuilder::new();
        let root = o.pack(&mut fbb);
        fbb.finish(root, None);
        fbb.finished_data().to_vec()
    });
    (
        (of(text()), int!(i32), vec(by_id, 0..MAX_LEN), of(vec(by_name, 0..MAX_LEN))),
        (of(nested), int!(u32), int!(u64), of(ordered().prop_map(Box::new))),
    )
        .prop_map(|((label, count, by_id, by_name), (nested, hash32, hash64, ordered))| {
            attrs::AttrsT { label, count, by_id, by_name, nested, hash32, hash64, ordered }
        })
        .boxed()
}

pub(crate) fn drawing() -> BoxedStrategy<unions::DrawingT> {
    use unions::{CircleT, ShapeT, SquareT};
    let square = || f32s().prop_map(|side| Box::new(SquareT { side }));
    let shape = || {
        prop_oneof![
            Just(ShapeT::NONE),
            f32s().prop_map(|radius| ShapeT::Circle(Box::new(CircleT { radius }))),
            square().prop_map(ShapeT::Box),
            tag().prop_map(|t| ShapeT::CorpusCommonTag(Box::new(t))),
            square().prop_map(ShapeT::Tile),
        ]
    };
    (shape(), shape(), of(text()))
        .prop_map(|(main, backup, name)| unions::DrawingT { main, backup, name })
        .boxed()
}

pub(crate) fn board() -> BoxedStrategy<variants::BoardT> {
    use variants::{AnyT, NoteT, SizeT};
    let any = || {
        prop_oneof![
            Just(AnyT::NONE),
            of(text()).prop_map(|text| AnyT::Note(Box::new(NoteT { text }))),
            (int!(u16), int!(u16)).prop_map(|(w, h)| AnyT::Size(SizeT { w, h })),
            point().prop_map(AnyT::At),
            text().prop_map(AnyT::Text),
            tag().prop_map(|t| AnyT::CorpusCommonTag(Box::new(t))),
        ]
    };
    (any(), of(vec(any(), 0..MAX_LEN)))
        .prop_map(|(pinned, items)| variants::BoardT { pinned, items })
        .boxed()
}

pub(crate) fn keywords() -> BoxedStrategy<keywords::RootT> {
    use keywords::{
        AT, BoxT, Kw, OptionT, ResultT, RootT, SelfT, StringT, VecT, WhichT, asyncT, crateT, fnT,
        matchT, selfT, superT, typeT,
    };
    let kw = || enumeration!(Kw, u8);
    let a = (
        (int!(i32), int!(i32), of(text()), int!(i32), int!(i32), int!(i32), int!(i32)),
        (int!(i32), int!(i32), int!(i32), int!(i32), int!(i32), any::<bool>(), f32s()),
        (int!(i32), int!(i32)),
    )
        .prop_map(|(first, second, third)| {
            let (table, namespace, string, r#struct, r#enum, union, include) = first;
            let (attribute, root_type, rpc_service, file_identifier, file_extension, bool, float) =
                second;
            let (r#type, r#move) = third;
            AT {
                table,
                namespace,
                string,
                r#struct,
                r#enum,
                union,
                include,
                attribute,
                root_type,
                rpc_service,
                file_identifier,
                file_extension,
                bool,
                float,
                r#type,
                r#move,
            }
        })
        .boxed();
    let type_table = (
        (int!(i32), int!(i32), int!(i32), int!(i32), int!(i32), int!(i32), int!(i32)),
        (int!(i32), int!(i32), int!(i32), int!(i32), int!(i32), kw(), of(vec(kw(), 0..MAX_LEN))),
    )
        .prop_map(|(first, second)| {
            let (r#async, r#await, r#dyn, r#try, r#pub, self_, super_) = first;
            let (crate_, r#fn, r#match, r#mod, r#ref, kind, kinds) = second;
            typeT {
                r#async,
                r#await,
                r#dyn,
                r#try,
                r#pub,
                self_,
                super_,
                crate_,
                r#fn,
                r#match,
                r#mod,
                r#ref,
                kind,
                kinds,
            }
        })
        .boxed();
    let n = || int!(i32);
    let which = prop_oneof![
        Just(WhichT::NONE),
        n().prop_map(|n| WhichT::Self_(Box::new(SelfT { n }))),
        n().prop_map(|n| WhichT::SmallSelf(Box::new(selfT { n }))),
        n().prop_map(|n| WhichT::Option(Box::new(OptionT { n }))),
        n().prop_map(|n| WhichT::Box(Box::new(BoxT { n }))),
    ];
    (
        (
            of(a.prop_map(Box::new)),
            of(type_table.prop_map(Box::new)),
            of(n().prop_map(|n| Box::new(SelfT { n }))),
            of(n().prop_map(|n| Box::new(selfT { n }))),
            of(n().prop_map(|n| Box::new(superT { n }))),
            of(n().prop_map(|n| Box::new(crateT { n }))),
        ),
        (
            of(n().prop_map(|n| Box::new(asyncT { n }))),
            of(n().prop_map(|n| Box::new(fnT { n }))),
            of(n().prop_map(|n| Box::new(matchT { n }))),
            of(n().prop_map(|n| Box::new(OptionT { n }))),
            of(n().prop_map(|n| Box::new(ResultT { n }))),
            of(vec(n().prop_map(|n| VecT { n }), 0..MAX_LEN)),
        ),
        (
            of(n().prop_map(|n| Box::new(StringT { n }))),
            of(text()),
            of(n().prop_map(|n| Box::new(BoxT { n }))),
            which,
            of(kw()),
        ),
    )
        .prop_map(|(first, second, third)| {
            let (a, type_table, big_self, small_self, super_table, crate_table) = first;
            let (async_table, fn_table, match_table, option, result, vecs) = second;
            let (string_table, text, r#box, which, maybe) = third;
            RootT {
                a,
                type_table,
                big_self,
                small_self,
                super_table,
                crate_table,
                async_table,
                fn_table,
                match_table,
                option,
                result,
                vecs,
                string_table,
                text,
                r#box,
                which,
                maybe,
            }
        })
        .boxed()
}

fn alpha() -> BoxedStrategy<ns::alpha::AlphaT> {
    (of(point()), of(text())).prop_map(|(at, label)| ns::alpha::AlphaT { at, label }).boxed()
}

pub(crate) fn world() -> BoxedStrategy<ns::WorldT> {
    let area = (of((point(), point())), of(vec(tag(), 0..MAX_LEN))).prop_map(|(bounds, tags)| {
        geo::AreaT { bounds: bounds.map(|(min, max)| geo::RectT { min, max }), tags }
    });
    let beta =
        (of(alpha().prop_map(Box::new)), of(tag().prop_map(Box::new)), of(area.prop_map(Box::new)))
            .prop_map(|(alpha, tag, area)| ns::beta::BetaT { alpha, tag, area });
    let beta = beta.boxed();
    (of(alpha().prop_map(Box::new)), of(beta.clone().prop_map(Box::new)), of(vec(beta, 0..3)))
        .prop_map(|(alpha, beta, others)| ns::WorldT { alpha, beta, others })
        .boxed()
}

pub(crate) fn request() -> BoxedStrategy<rpc::RequestT> {
    (of(text()), int!(u16)).prop_map(|(text, times)| rpc::RequestT { text, times }).boxed()
}

pub(crate) fn line() -> BoxedStrategy<crlf::LineT> {
    (text(), int!(u32)).prop_map(|(text, number)| crlf::LineT { text, number }).boxed()
}

//! A large synthetic schema for timing rpcgen itself (and flatc beside it): many namespaces,
//! one file each, full of tables whose fields cycle through every kind of type.
//!
//! The files are independent (no includes), so a tool given all of them parses each exactly
//! once, and flatc, which compiles its inputs one by one, does the same work as rpcgen.

use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};

/// How big a schema to write.
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    pub namespaces: usize,
    pub tables: usize,
    pub fields: usize,
    pub enums: usize,
    pub structs: usize,
    pub unions: usize,
}

impl Shape {
    /// 40 namespaces of 25 tables of 20 fields, 10 enums, 10 structs and 5 unions each:
    /// 2,000 declarations and 20,000 table fields.
    pub const LARGE: Shape =
        Shape { namespaces: 40, tables: 25, fields: 20, enums: 10, structs: 10, unions: 5 };

    /// Tables, structs, enums and unions in the whole schema.
    pub fn declarations(&self) -> usize {
        self.namespaces * (self.tables + self.enums + self.structs + self.unions)
    }
}

/// The files written, and their size.
#[derive(Clone, Debug)]
pub struct Written {
    pub files: Vec<PathBuf>,
    pub lines: usize,
    pub bytes: usize,
    pub declarations: usize,
}

/// Writes `shape` into `dir` as `ns<N>.fbs` files.
///
/// # Errors
///
/// The I/O error that stopped writing a file.
pub fn write(dir: &Path, shape: Shape) -> io::Result<Written> {
    let mut written =
        Written { files: Vec::new(), lines: 0, bytes: 0, declarations: shape.declarations() };
    for n in 0..shape.namespaces {
        let text = namespace_file(n, shape);
        let path = dir.join(format!("ns{n}.fbs"));
        std::fs::write(&path, &text)?;
        written.lines += text.lines().count();
        written.bytes += text.len();
        written.files.push(path);
    }
    Ok(written)
}

/// One namespace: enums (every other one `bit_flags`), structs (each but the first nesting the
/// previous one), unions of three tables each, then tables, which refer to each other and to
/// everything above. flatc needs enums and unions declared before the fields that use them;
/// tables may come later.
pub fn namespace_file(n: usize, shape: Shape) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = writeln!(out, "// Generated for rpcgen's compile benchmark.\n\nnamespace bench.ns{n};");
    for e in 0..shape.enums {
        if e % 2 == 0 {
            let _ = writeln!(out, "\nenum Kind{e} : ubyte {{ Unknown = 0, Alpha, Beta, Gamma }}");
        } else {
            let _ =
                writeln!(out, "\nenum Flags{e} : uint (bit_flags) {{ Read, Write, Exec, Admin }}");
        }
    }
    for s in 0..shape.structs {
        let _ =
            writeln!(out, "\nstruct Vec{s} {{\n  x: float;\n  y: float;\n  z: int;\n  tag: ubyte;");
        if s > 0 {
            let _ = writeln!(out, "  inner: Vec{};", s - 1);
        }
        out.push_str("}\n");
    }
    for u in 0..shape.unions {
        let [a, b, c] = [u, u + 1, u + 2].map(|i| i % shape.tables);
        let _ = writeln!(out, "\nunion Choice{u} {{ Table{a}, Table{b}, Table{c} }}");
    }
    for t in 0..shape.tables {
        table(&mut out, t, shape);
    }
    out
}

fn table(out: &mut String, t: usize, shape: Shape) {
    let _ = writeln!(out, "\n/// Table {t}: fields of every kind.\ntable Table{t} {{");
    for f in 0..shape.fields {
        let (ty, suffix) = field_type(t, f, shape);
        let _ = writeln!(out, "  field_{f}: {ty}{suffix};");
    }
    out.push_str("}\n");
}

/// The type of field `f` of table `t`, and what follows it (a default or attributes). Kinds
/// rotate with `t + f`, so every table has a different mix.
fn field_type(t: usize, f: usize, shape: Shape) -> (String, String) {
    let other = |k: usize, count: usize| (t + f + k) % count.max(1);
    let plain = |ty: &str| (ty.to_owned(), String::new());
    let with = |ty: &str, suffix: String| (ty.to_owned(), suffix);
    match (t + f) % 20 {
        0 => with("bool", " = true".into()),
        1 => plain("byte"),
        2 => with("ubyte", format!(" = {f}")),
        3 => plain("short"),
        4 => with("ushort", " = null".into()),
        5 => with("int", format!(" = -{f}")),
        6 => plain("uint"),
        7 => with("long", " = 0x7fff".into()),
        8 => plain("ulong"),
        9 => with("float", " = 0.5".into()),
        10 => with("double", " = null".into()),
        11 => match t % 3 {
            0 => with("string", " (required, key)".into()),
            1 => with("string", " (key)".into()),
            _ => plain("string"),
        },
        12 => {
            let e = other(0, shape.enums);
            if e % 2 == 0 {
                with(&format!("Kind{e}"), " = Beta".into())
            } else {
                plain(&format!("Flags{e}"))
            }
        }
        13 => plain(&format!("Vec{}", other(1, shape.structs))),
        14 => plain("[int]"),
        15 => plain("[string]"),
        16 => plain(&format!("[Table{}]", other(2, shape.tables))),
        17 => plain(&format!("[Vec{}]", other(3, shape.structs))),
        18 if t % 5 == 0 => {
            with(&format!("Table{}", other(4, shape.tables)), " (deprecated)".into())
        }
        18 => plain(&format!("Table{}", other(4, shape.tables))),
        _ => plain(&format!("Choice{}", other(5, shape.unions))),
    }
}

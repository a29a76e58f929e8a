//! Case conversion of schema names, shared by the checker (which reports names that would meet
//! once converted) and the backends (which convert them).

/// flatc's snake_case conversion (`ToSnakeCase` in flatc's `util.cpp`): `HTTPServer2` →
/// `httpserver_2`, `GameXY` → `game_xy`. Used for module names and for method and function
/// names derived from type names (`root_as_monster`, `as_weapon`).
pub(crate) fn snake(name: &str) -> String {
    convert_snake(name, false)
}

/// The screaming form of [`snake`]: `Monster` → `MONSTER` (for `MONSTER_IDENTIFIER`).
pub(crate) fn screaming(name: &str) -> String {
    convert_snake(name, true)
}

fn convert_snake(name: &str, upper: bool) -> String {
    let case = |c: char| if upper { c.to_ascii_uppercase() } else { c.to_ascii_lowercase() };
    let chars: Vec<char> = name.chars().collect();
    let mut out = String::with_capacity(name.len() + 4);
    for (i, &c) in chars.iter().enumerate() {
        if i == 0 || c == '_' {
            out.push(case(c));
        } else if !c.is_ascii_lowercase() {
            let prev = chars[i - 1];
            if prev.is_ascii_lowercase() || (prev.is_ascii_digit() && !c.is_ascii_digit()) {
                out.push('_');
            }
            out.push(case(c));
        } else {
            out.push(case(c));
        }
    }
    out
}

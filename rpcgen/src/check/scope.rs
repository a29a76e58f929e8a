//! Name resolution: the table of declared names and flatc's lookup rule.
//!
//! flatc looks a name `N` written in namespace `a.b` up as `a.b.N`, then `a.N`, then `N`; a dotted
//! name `x.N` is tried the same way (`a.b.x.N`, `a.x.N`, `x.N`). The scalar keywords and `string`
//! are not declarations and are recognised before any lookup.

use std::collections::HashMap;

use crate::model::{DeclId, QualifiedName, Scalar};
use crate::syntax::ast::Path;

/// Every named declaration of the compilation, by dotted qualified name.
#[derive(Debug, Default)]
pub(super) struct Scope {
    by_name: HashMap<String, DeclId>,
    names: Vec<QualifiedName>,
}

impl Scope {
    /// Registers `name` and returns its id, or the id of the declaration that already has it.
    pub(super) fn insert(&mut self, name: QualifiedName) -> Result<DeclId, DeclId> {
        let dotted = name.dotted();
        if let Some(&existing) = self.by_name.get(&dotted) {
            return Err(existing);
        }
        let id = DeclId(self.names.len() as u32);
        self.by_name.insert(dotted, id);
        self.names.push(name);
        Ok(id)
    }

    /// Resolves `path` as written inside `namespace`, innermost namespace first.
    pub(super) fn lookup(&self, namespace: &[String], path: &Path) -> Option<DeclId> {
        self.lookup_dotted(namespace, &path.dotted())
    }

    pub(super) fn lookup_dotted(&self, namespace: &[String], dotted: &str) -> Option<DeclId> {
        (0..=namespace.len()).rev().find_map(|depth| {
            let mut candidate = namespace[..depth].join(".");
            if !candidate.is_empty() {
                candidate.push('.');
            }
            candidate.push_str(dotted);
            self.by_name.get(&candidate).copied()
        })
    }

    /// A declared name close to `written` (a small edit distance away), spelled the way it can
    /// be written from `namespace`. `extra` adds candidates that are not declarations (scalar
    /// keywords in type positions).
    pub(super) fn suggest(
        &self,
        namespace: &[String],
        written: &str,
        extra: &[&str],
    ) -> Option<String> {
        let dotted_written = written.contains('.');
        let declared = self.names.iter().enumerate().map(|(index, name)| {
            let short_resolves =
                self.lookup_dotted(namespace, &name.name) == Some(DeclId(index as u32));
            let spelled = if short_resolves { name.name.clone() } else { name.dotted() };
            let compared = if dotted_written { name.dotted() } else { name.name.clone() };
            (compared, spelled)
        });
        let extra = extra.iter().map(|k| (k.to_string(), k.to_string()));
        declared
            .chain(extra)
            .map(|(compared, spelled)| (edit_distance(written, &compared), spelled))
            .filter(|(distance, _)| *distance > 0 && *distance <= max_typo_distance(written))
            .min_by_key(|(distance, _)| *distance)
            .map(|(_, spelled)| spelled)
    }
}

/// How many edits still count as a typo: one for short names, a third of the length for long.
fn max_typo_distance(written: &str) -> usize {
    (written.chars().count() / 3).max(1)
}

/// Levenshtein distance in characters.
pub(super) fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, &cb) in b.iter().enumerate() {
            let substitute = previous[j] + usize::from(ca != cb);
            current.push(substitute.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

/// The scalar keywords and their aliases, as flatc accepts them.
pub(super) const SCALAR_KEYWORDS: [(&str, Scalar); 21] = [
    ("bool", Scalar::Bool),
    ("byte", Scalar::I8),
    ("ubyte", Scalar::U8),
    ("short", Scalar::I16),
    ("ushort", Scalar::U16),
    ("int", Scalar::I32),
    ("uint", Scalar::U32),
    ("long", Scalar::I64),
    ("ulong", Scalar::U64),
    ("float", Scalar::F32),
    ("double", Scalar::F64),
    ("int8", Scalar::I8),
    ("uint8", Scalar::U8),
    ("int16", Scalar::I16),
    ("uint16", Scalar::U16),
    ("int32", Scalar::I32),
    ("uint32", Scalar::U32),
    ("int64", Scalar::I64),
    ("uint64", Scalar::U64),
    ("float32", Scalar::F32),
    ("float64", Scalar::F64),
];

/// The scalar a keyword names.
pub(super) fn scalar_keyword(name: &str) -> Option<Scalar> {
    SCALAR_KEYWORDS.iter().find(|(k, _)| *k == name).map(|&(_, s)| s)
}

/// Every built-in type keyword, `string` included: suggestion candidates in type positions.
pub(super) fn type_keywords() -> Vec<&'static str> {
    SCALAR_KEYWORDS.iter().map(|(k, _)| *k).chain(["string"]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::Span;
    use crate::syntax::ast::Ident;

    fn qn(namespace: &[&str], name: &str) -> QualifiedName {
        QualifiedName {
            namespace: namespace.iter().map(|s| s.to_string()).collect(),
            name: name.to_string(),
        }
    }

    fn path(dotted: &str) -> Path {
        let parts = dotted
            .split('.')
            .map(|p| Ident { text: p.to_string(), span: Span::default() })
            .collect();
        Path { parts, span: Span::default() }
    }

    fn ns(parts: &[&str]) -> Vec<String> {
        parts.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn lookup_tries_innermost_namespace_first() {
        let mut scope = Scope::default();
        let outer = scope.insert(qn(&["a"], "X")).unwrap();
        let inner = scope.insert(qn(&["a", "b"], "X")).unwrap();
        let root = scope.insert(qn(&[], "Y")).unwrap();
        assert_eq!(scope.lookup(&ns(&["a", "b"]), &path("X")), Some(inner));
        assert_eq!(scope.lookup(&ns(&["a", "c"]), &path("X")), Some(outer));
        assert_eq!(scope.lookup(&ns(&["a", "c"]), &path("Y")), Some(root));
        assert_eq!(scope.lookup(&ns(&["a", "c"]), &path("b.X")), Some(inner));
        assert_eq!(scope.lookup(&ns(&["c"]), &path("b.X")), None);
    }

    #[test]
    fn duplicate_insert_returns_first_id() {
        let mut scope = Scope::default();
        let first = scope.insert(qn(&["a"], "X")).unwrap();
        assert_eq!(scope.insert(qn(&["a"], "X")), Err(first));
    }

    #[test]
    fn suggests_close_names_only() {
        let mut scope = Scope::default();
        scope.insert(qn(&[], "Monster")).unwrap();
        assert_eq!(scope.suggest(&[], "Monstr", &[]), Some("Monster".to_string()));
        assert_eq!(scope.suggest(&[], "Zzz", &[]), None);
        assert_eq!(scope.suggest(&[], "unit", &type_keywords()), Some("uint".to_string()));
    }

    #[test]
    fn edit_distance_counts_edits() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("same", "same"), 0);
    }
}

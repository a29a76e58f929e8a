//! Loading: reads the input files and, transitively, the files they include.
//!
//! An include is looked for, as flatc does, first next to the including file, then in each
//! [`LoadOptions::include_dirs`] entry in order (relative entries are relative to the working
//! directory). Every file is read once, however many files include it (paths are compared once
//! canonicalised), so include cycles are harmless. Files ending in `.service` are service files;
//! anything else is a FlatBuffers schema.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};

use crate::diag::{Diagnostic, Diagnostics};
use crate::source::{FileId, Loc, SourceFile, SourceMap};
use crate::syntax::ast::{FbsFile, ItemKind, ServiceFile, ServiceItemKind, StrLit};
use crate::syntax::{parse_fbs, parse_service};

/// A parsed input file.
#[derive(Debug)]
pub struct ParsedFile {
    pub file: FileId,
    pub ast: Ast,
    /// The files this one includes, resolved and loaded, in include order.
    pub includes: Vec<FileId>,
}

#[derive(Debug)]
pub enum Ast {
    Fbs(FbsFile),
    Service(ServiceFile),
}

/// Where to look for included files, besides the including file's own folder.
#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    pub include_dirs: Vec<PathBuf>,
}

/// Reads and parses `inputs` and everything they include, each file once.
///
/// The result lists every file in dependency order: a file comes after all the files it includes.
/// Unreadable or missing files are diagnostics, not panics.
pub fn load(
    inputs: &[PathBuf],
    options: &LoadOptions,
    sources: &mut SourceMap,
    diags: &mut Diagnostics,
) -> Vec<ParsedFile> {
    let mut loader = Loader {
        options,
        sources,
        diags,
        seen: HashMap::new(),
        done: Vec::new(),
    };
    for input in inputs {
        loader.visit(input.clone(), input.display().to_string(), None);
    }
    loader.done
}

struct Loader<'a> {
    options: &'a LoadOptions,
    sources: &'a mut SourceMap,
    diags: &'a mut Diagnostics,
    /// Canonical path → file, for every file read or being read.
    seen: HashMap<PathBuf, FileId>,
    /// Finished files, each pushed after the files it includes.
    done: Vec<ParsedFile>,
}

impl Loader<'_> {
    /// Loads the file at `path` (shown as `name`) and its includes, unless already loaded.
    /// `include` is where it was included from, to place a read error.
    fn visit(&mut self, path: PathBuf, name: String, include: Option<Loc>) -> Option<FileId> {
        let read = std::fs::canonicalize(&path)
            .and_then(|canonical| Ok((std::fs::read_to_string(&path)?, canonical)));
        let (text, canonical) = match read {
            Ok(read) => read,
            Err(err) => {
                let error = Diagnostic::error(format!("cannot read `{name}`: {err}"));
                self.diags.push(match include {
                    Some(loc) => error.at(loc, "included here"),
                    None => error,
                });
                return None;
            }
        };
        if let Some(&id) = self.seen.get(&canonical) {
            return Some(id);
        }
        let is_service = path.extension().is_some_and(|ext| ext == "service");
        let id = self.sources.push(SourceFile::new(path, name, text));
        self.seen.insert(canonical, id);
        let text = &self.sources.get(id).text;
        let (ast, wanted) = if is_service {
            let ast = parse_service(id, text, self.diags);
            let wanted = ast.items.iter().filter_map(|item| match &item.kind {
                ServiceItemKind::Include(lit) => Some(lit.clone()),
                _ => None,
            });
            let wanted = wanted.collect::<Vec<_>>();
            (Ast::Service(ast), wanted)
        } else {
            let ast = parse_fbs(id, text, self.diags);
            let wanted = ast.items.iter().filter_map(|item| match &item.kind {
                ItemKind::Include(lit) => Some(lit.clone()),
                _ => None,
            });
            let wanted = wanted.collect::<Vec<_>>();
            (Ast::Fbs(ast), wanted)
        };
        let includes = wanted
            .iter()
            .filter_map(|lit| self.include(id, lit))
            .collect();
        self.done.push(ParsedFile {
            file: id,
            ast,
            includes,
        });
        Some(id)
    }

    /// Resolves and loads the file `lit` names, included from `from`.
    fn include(&mut self, from: FileId, lit: &StrLit) -> Option<FileId> {
        let loc = Loc::new(from, lit.span);
        let own_dir = self.sources.get(from).path.parent().map(Path::to_path_buf);
        let dirs: Vec<PathBuf> = own_dir
            .into_iter()
            .chain(self.options.include_dirs.iter().cloned())
            .collect();
        match dirs
            .iter()
            .map(|dir| dir.join(&lit.value))
            .find(|path| path.is_file())
        {
            Some(path) => {
                let name = tidy(&path).display().to_string();
                self.visit(path, name, Some(loc))
            }
            None => {
                let searched: Vec<String> = dirs
                    .iter()
                    .map(|dir| match dir.as_os_str().is_empty() {
                        true => "`.`".to_string(),
                        false => format!("`{}`", dir.display()),
                    })
                    .collect();
                self.diags.push(
                    Diagnostic::error(format!("cannot find included file `{}`", lit.value))
                        .at(loc, "not found")
                        .note(format!("searched in {}", searched.join(", "))),
                );
                None
            }
        }
    }
}

/// `a/./b/../c.fbs` → `a/c.fbs`, for display only: the name stays close to what the user wrote
/// without depending on the machine (no canonical, absolute path).
fn tidy(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir
                if matches!(out.components().next_back(), Some(Component::Normal(_))) =>
            {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    /// Writes `files` (relative path, text) under a fresh temporary directory.
    fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("temp dir");
        for (path, text) in files {
            let path = dir.path().join(path);
            fs::create_dir_all(path.parent().expect("a parent")).expect("create dirs");
            fs::write(path, text).expect("write file");
        }
        dir
    }

    fn run(
        inputs: &[PathBuf],
        include_dirs: &[PathBuf],
    ) -> (Vec<ParsedFile>, SourceMap, Diagnostics) {
        let mut sources = SourceMap::new();
        let mut diags = Diagnostics::new();
        let options = LoadOptions {
            include_dirs: include_dirs.to_vec(),
        };
        let files = load(inputs, &options, &mut sources, &mut diags);
        (files, sources, diags)
    }

    /// Names of the loaded files, relative to `root`, in the order `load` returned them.
    fn order(files: &[ParsedFile], sources: &SourceMap, root: &Path) -> Vec<String> {
        let root = root.display().to_string();
        files
            .iter()
            .map(|f| {
                sources
                    .get(f.file)
                    .name
                    .trim_start_matches(&root)
                    .trim_start_matches('/')
                    .to_string()
            })
            .collect()
    }

    #[test]
    fn includes_resolve_next_to_the_includer_then_in_include_dirs_in_order() {
        let dir = tree(&[
            (
                "app/main.fbs",
                "include \"local.fbs\";\ninclude \"shared.fbs\";\ntable M {}",
            ),
            ("app/local.fbs", "include \"deep/leaf.fbs\";\ntable L {}"),
            ("app/deep/leaf.fbs", "table Leaf {}"),
            ("first/shared.fbs", "include \"leaf2.fbs\";\ntable S {}"),
            ("second/shared.fbs", "table NotThisOne {}"),
            // Found through `second`: `first` has no leaf2.fbs, and `app` is not searched for a
            // file included from `first`.
            ("second/leaf2.fbs", "table Leaf2 {}"),
            ("app/leaf2.fbs", "table Wrong {}"),
        ]);
        let root = dir.path();
        let dirs = [root.join("first"), root.join("second")];
        let (files, sources, diags) = run(&[root.join("app/main.fbs")], &dirs);
        assert!(diags.is_empty(), "{}", diags.render(&sources, false));
        assert_eq!(
            order(&files, &sources, root),
            [
                "app/deep/leaf.fbs",
                "app/local.fbs",
                "second/leaf2.fbs",
                "first/shared.fbs",
                "app/main.fbs"
            ]
        );
        let main = files.last().expect("main");
        let included: Vec<&str> = main
            .includes
            .iter()
            .map(|&id| sources.get(id).name.as_str())
            .collect();
        assert_eq!(
            included,
            [
                sources.get(files[1].file).name.as_str(),
                sources.get(files[3].file).name.as_str()
            ]
        );
        assert!(matches!(&files[0].ast, Ast::Fbs(f) if f.items.len() == 1));
    }

    #[test]
    fn each_file_is_loaded_once_and_cycles_are_fine() {
        let dir = tree(&[
            (
                "a.fbs",
                "include \"b.fbs\";\ninclude \"c.fbs\";\ntable A {}",
            ),
            (
                "b.fbs",
                "include \"a.fbs\";\ninclude \"c.fbs\";\ntable B {}",
            ),
            ("c.fbs", "include \"./c.fbs\";\ntable C {}"),
        ]);
        let root = dir.path();
        let inputs = [root.join("a.fbs"), root.join("./b.fbs"), root.join("a.fbs")];
        let (files, sources, diags) = run(&inputs, &[]);
        assert!(diags.is_empty(), "{}", diags.render(&sources, false));
        assert_eq!(order(&files, &sources, root), ["c.fbs", "b.fbs", "a.fbs"]);
        assert_eq!(sources.len(), 3);
        // b includes a while a is still being loaded: the include is kept, the order cannot be.
        assert_eq!(files[1].includes, [files[2].file, files[0].file]);
    }

    #[test]
    fn a_missing_include_is_reported_at_its_string_with_the_folders_searched() {
        let dir = tree(&[("api/main.service", "include \"gone.fbs\";\nservice S {}")]);
        let root = dir.path();
        let extra = root.join("extra");
        let (files, sources, diags) = run(
            &[root.join("api/main.service")],
            std::slice::from_ref(&extra),
        );
        let [error] = diags.iter().collect::<Vec<_>>()[..] else {
            panic!("one error expected")
        };
        assert_eq!(error.message, "cannot find included file `gone.fbs`");
        let label = &error.labels[0];
        assert_eq!(
            sources.get(label.loc.file).slice(label.loc.span),
            "\"gone.fbs\""
        );
        let searched = format!(
            "note: searched in `{}`, `{}`",
            root.join("api").display(),
            extra.display()
        );
        assert_eq!(error.notes, [searched]);
        assert!(matches!(&files[0].ast, Ast::Service(s) if s.items.len() == 2));
        assert!(files[0].includes.is_empty());
    }

    #[test]
    fn a_missing_input_names_the_path_and_the_os_reason() {
        let (files, _, diags) = run(&[PathBuf::from("no/such/file.fbs")], &[]);
        assert!(files.is_empty());
        let messages: Vec<&str> = diags.iter().map(|d| d.message.as_str()).collect();
        assert_eq!(messages.len(), 1);
        assert!(
            messages[0].starts_with("cannot read `no/such/file.fbs`: "),
            "{}",
            messages[0]
        );
        assert!(messages[0].contains("No such file"), "{}", messages[0]);
    }

    #[test]
    fn names_are_the_paths_as_given_or_as_resolved() {
        let dir = tree(&[
            ("x/a.fbs", "include \"../y/b.fbs\";"),
            ("y/b.fbs", "table B {}"),
        ]);
        let input = dir.path().join("x/./a.fbs");
        let (files, sources, _) = run(std::slice::from_ref(&input), &[]);
        assert_eq!(sources.get(files[1].file).name, input.display().to_string());
        assert_eq!(
            sources.get(files[0].file).name,
            dir.path().join("y/b.fbs").display().to_string()
        );
    }

    #[test]
    fn the_extension_picks_the_parser() {
        let dir = tree(&[("s.service", "service S {}"), ("t.schema", "table T {}")]);
        let inputs = [dir.path().join("s.service"), dir.path().join("t.schema")];
        let (files, _, diags) = run(&inputs, &[]);
        assert!(diags.is_empty());
        assert!(matches!(files[0].ast, Ast::Service(_)));
        assert!(matches!(files[1].ast, Ast::Fbs(_)));
    }
}

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
    let mut loader = Loader { options, sources, diags, seen: HashMap::new(), done: Vec::new() };
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
        let includes = wanted.iter().filter_map(|lit| self.include(id, lit)).collect();
        self.done.push(ParsedFile { file: id, ast, includes });
        Some(id)
    }

    /// Resolves and loads the file `lit` names, included from `from`.
    fn include(&mut self, from: FileId, lit: &StrLit) -> Option<FileId> {
        let loc = Loc::new(from, lit.span);
        let own_dir = self.sources.get(from).path.parent().map(Path::to_path_buf);
        let dirs: Vec<PathBuf> =
            own_dir.into_iter().chain(self.options.include_dirs.iter().cloned()).collect();
        match dirs.iter().map(|dir| dir.join(&lit.value)).find(|path| path.is_file()) {
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

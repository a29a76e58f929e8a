//! FlatBuffers' own `rpc_service` declarations, and the file-level items `root_type`,
//! `file_identifier` and `file_extension`.

use std::collections::HashMap;

use crate::diag::Diagnostic;
use crate::load::{Ast, ParsedFile};
use crate::model::{DeclId, DeclKind, FileInfo, RpcMethod, RpcService};
use crate::source::{Loc, SourceMap, Span};
use crate::syntax::ast::{ItemKind, RpcServiceDecl};

use super::attrs::{self, Place};
use super::{Checker, DeclAst};

impl Checker<'_, '_> {
    pub(super) fn check_rpc_services(&mut self) {
        for id in self.ids_where(|ast| matches!(ast, DeclAst::RpcService(_))) {
            let DeclAst::RpcService(decl) = self.source(id).ast else {
                continue;
            };
            let service = self.check_rpc_service(id, decl);
            self.kinds[id.0 as usize] = Some(DeclKind::RpcService(service));
        }
    }

    fn check_rpc_service(&mut self, id: DeclId, decl: &RpcServiceDecl) -> RpcService {
        let file = self.source(id).file;
        let namespace = self.namespace(id);
        self.check_attributes(file, &decl.attributes, Place::RpcService);
        let mut names: HashMap<&str, Span> = HashMap::new();
        let mut methods = Vec::new();
        for method in &decl.methods {
            self.check_attributes(file, &method.attributes, Place::RpcMethod);
            let loc = Loc::new(file, method.name.span);
            if let Some(first) = names.insert(&method.name.text, method.name.span) {
                self.report(
                    Diagnostic::error(format!(
                        "rpc method `{}` is defined twice",
                        method.name.text
                    ))
                    .at(loc, "redefined here")
                    .with(Loc::new(file, first), "first defined here"),
                );
                continue;
            }
            let request = self.resolve_table(file, &namespace, &method.request, "an rpc request");
            let response =
                self.resolve_table(file, &namespace, &method.response, "an rpc response");
            let (Some(request), Some(response)) = (request, response) else {
                continue;
            };
            methods.push(RpcMethod {
                name: method.name.text.clone(),
                docs: method.docs.clone(),
                loc,
                request,
                response,
                attributes: attrs::kept(&method.attributes),
            });
        }
        RpcService { methods }
    }

    /// One [`FileInfo`] per loaded file, with its `root_type`, `file_identifier` and
    /// `file_extension` checked.
    pub(super) fn check_files(
        &mut self,
        sources: &SourceMap,
        files: &[ParsedFile],
    ) -> Vec<FileInfo> {
        files
            .iter()
            .map(|parsed| {
                let mut info = FileInfo {
                    file: parsed.file,
                    path: sources.get(parsed.file).path.clone(),
                    root_type: None,
                    file_identifier: None,
                    file_extension: None,
                    includes: parsed.includes.clone(),
                };
                let Ast::Fbs(fbs) = &parsed.ast else {
                    return info;
                };
                let mut namespace: Vec<String> = Vec::new();
                for item in &fbs.items {
                    match &item.kind {
                        ItemKind::Namespace(path) => {
                            namespace = path.parts.iter().map(|p| p.text.clone()).collect();
                        }
                        ItemKind::RootType(path) => {
                            info.root_type =
                                self.resolve_table(parsed.file, &namespace, path, "the root type");
                        }
                        ItemKind::FileIdentifier(id) => {
                            match <[u8; 4]>::try_from(id.value.as_bytes()) {
                                Ok(bytes) => info.file_identifier = Some(bytes),
                                Err(_) => self.report(
                                    Diagnostic::error(format!(
                                        "file_identifier must be exactly 4 bytes, `{}` has {}",
                                        id.value,
                                        id.value.len()
                                    ))
                                    .at(Loc::new(parsed.file, id.span), "not 4 bytes"),
                                ),
                            }
                        }
                        ItemKind::FileExtension(ext) => {
                            info.file_extension = Some(ext.value.clone())
                        }
                        _ => {}
                    }
                }
                info
            })
            .collect()
    }
}

//! Schema and service files through rpcgen's front end: parser and checker, diagnostics
//! rendered. A file is untrusted input to rpcgen: a build script runs it on whatever a
//! repository holds, and a bad file must get diagnostics, not a panic or a hang. (The backends
//! read only checked models; the cross-checks against flatc cover them.)

use std::path::PathBuf;

use rpcgen::diag::Diagnostics;
use rpcgen::load::{Ast, ParsedFile};
use rpcgen::source::{SourceFile, SourceMap};
use rpcgen::syntax::{parse_fbs, parse_service};

/// One `.fbs` file (the bytes, if UTF-8).
pub fn fbs(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    compile(Some(text), None);
}

/// A `.service` file and the `.fbs` file it includes: the bytes up to the first NUL are the
/// schema, the rest the service file.
pub fn service(data: &[u8]) {
    let split = data.iter().position(|&b| b == 0).unwrap_or(data.len());
    let (Ok(schema), Ok(service)) = (
        std::str::from_utf8(&data[..split]),
        std::str::from_utf8(data.get(split + 1..).unwrap_or_default()),
    ) else {
        return;
    };
    compile(Some(schema), Some(service));
}

/// Parses and checks the files (the service file including the schema), and renders the
/// diagnostics as the command line shows them: there are errors exactly when one is shown.
fn compile(schema: Option<&str>, service: Option<&str>) {
    let mut sources = SourceMap::new();
    let mut diags = Diagnostics::new();
    let mut files = Vec::new();
    if let Some(text) = schema {
        let id = sources.push(SourceFile::new(
            PathBuf::from("fuzz.fbs"),
            "fuzz.fbs".into(),
            text.into(),
        ));
        let ast = parse_fbs(id, &sources.get(id).text, &mut diags);
        files.push(ParsedFile { file: id, ast: Ast::Fbs(ast), includes: Vec::new() });
    }
    if let Some(text) = service {
        let path = PathBuf::from("fuzz.service");
        let id = sources.push(SourceFile::new(path, "fuzz.service".into(), text.into()));
        let ast = parse_service(id, &sources.get(id).text, &mut diags);
        let includes = files.iter().map(|f| f.file).collect();
        files.push(ParsedFile { file: id, ast: Ast::Service(ast), includes });
    }
    if !diags.has_errors() {
        let _model = rpcgen::check::check(&sources, &files, &mut diags);
    }
    let shown = diags.render(&sources, false);
    assert_eq!(diags.has_errors(), shown.contains("error"), "errors not shown: {shown}");
}

//! The pest grammars of both languages, compiled into one parser so that the rules they share
//! (`common.pest`: trivia, names, literals, attributes, types) have a single [`Rule`] type and a
//! single lowering in [`lower`](super::lower).

#[derive(Debug, pest_derive::Parser)]
#[grammar = "syntax/common.pest"]
#[grammar = "syntax/fbs.pest"]
#[grammar = "syntax/service.pest"]
pub(crate) struct Grammar;

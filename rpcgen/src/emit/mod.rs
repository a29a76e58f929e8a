//! Code generation backends. Each reads only the checked [`Model`](crate::model::Model).

pub mod rust;
pub mod ts;

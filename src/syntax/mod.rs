//! Text to syntax tree: the source files, the grammar (`grammar/cnm.pest`) and the tree.

mod ast;
mod complete;
mod parser;
pub mod read;
mod source;

pub use ast::*;
pub use complete::needs_more;
pub use parser::parse;
pub use source::{FileId, Location, SourceFile, Sources, Span};

//! cnm: a shell-like language for Docker's Container Network Model on Linux.
//!
//! The pipeline, one module per stage:
//! text ─[`syntax`]→ syntax tree ─[`check`]→ desired [`model`] ─[`plan`]→ kernel operations.
//! [`state`] holds the committed model; [`cli`] is the command line over all of it.

/// Writes a line to standard output. A closed output (`cnm show | head -1`) loses the
/// line; it never aborts what is under way, as `println!` would.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// Writes a line to standard error, in one write; a closed standard error
/// (`cnm apply … 2>&1 | head`) loses the line and never aborts a transaction half-way.
macro_rules! note {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = std::io::stderr().write_all(format!("{}\n", format_args!($($arg)*)).as_bytes());
    }};
}

pub mod backend;
pub mod check;
pub mod cli;
pub mod drift;
pub mod error;
pub mod exec;
pub mod expect;
pub mod export;
pub mod gc;
pub mod graph;
pub mod io_reason;
pub mod journal;
pub mod model;
pub mod observe;
pub mod plan;
pub mod probe;
pub mod report;
pub mod session;
pub mod state;
pub mod syntax;

use check::Checked;
use error::Diagnostic;
use model::Model;
use syntax::{FileId, Sources};

/// Reads, checks and plans scripts already loaded into `sources`, against `committed`.
pub fn plan_scripts(
    sources: &mut Sources,
    files: &[FileId],
    committed: &Model,
) -> Result<(Checked, plan::Plan), Vec<Diagnostic>> {
    let checked = check::check(sources, files, committed)?;
    let plan = plan::plan(committed, &checked);
    Ok((checked, plan))
}

/// The model the script `text` (named `name`) makes from `committed`, and the plan that
/// gets there; panics if it does not check.
#[cfg(test)]
pub(crate) fn plan_text(name: &str, text: &str, committed: &Model) -> (Model, plan::Plan) {
    let mut sources = Sources::default();
    let id = sources.add(name, text);
    let (checked, plan) = plan_scripts(&mut sources, &[id], committed).expect("the script checks");
    (checked.model, plan)
}

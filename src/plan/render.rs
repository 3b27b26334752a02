//! A plan as people read it (`cnm plan`) and as programs read it (`cnm plan --json`).

use std::fmt::Write;
use std::path::Path;

use anstyle::{AnsiColor, Style};
use serde::Serialize;

use super::{summary, ChangeAction, Op, Plan};
use crate::model::ObjectKind;
use crate::syntax::{Location, Sources, Span};

/// The version of the `--json` layout. A change that could break a reader bumps the
/// major number; new fields bump the minor one.
pub const PLAN_FORMAT_VERSION: &str = "1.0";

/// What an empty plan means. cnm compares the script with the committed state; it does
/// not read the kernel back here, so it claims nothing about the kernel.
pub const NO_CHANGES: &str = "No changes: the committed state already matches the script.";

const ADD: Style = AnsiColor::Green.on_default();
const CHANGE: Style = AnsiColor::Yellow.on_default();
const REMOVE: Style = AnsiColor::Red.on_default();
const DIM: Style = Style::new().dimmed();
const BOLD: Style = Style::new().bold();

/// The human plan, with ANSI styles if `color`. Files are named under `etc_dir`, the
/// sandboxes' `/etc` directory.
pub fn human(plan: &Plan, sources: &Sources, etc_dir: &Path, color: bool) -> String {
    let painted = |style: Style, text: &dyn std::fmt::Display| match color {
        true => format!("{style}{text}{style:#}"),
        false => text.to_string(),
    };
    // About a line per change and per step.
    let mut out = String::with_capacity(80 * (plan.changes.len() + plan.steps.len()));
    if plan.is_empty() {
        out.push_str(NO_CHANGES);
        out.push('\n');
        return out;
    }
    out.push_str("cnm will make these changes:\n\n");
    for change in &plan.changes {
        let (sign, style) = match change.action {
            ChangeAction::Add => ('+', ADD),
            ChangeAction::Change => ('~', CHANGE),
            ChangeAction::Remove => ('-', REMOVE),
        };
        let line = format!("{sign} {} {}", change.kind, change.name);
        let _ = writeln!(
            out,
            "  {} {}",
            painted(style, &line),
            painted(DIM, &format_args!("({})", change.detail))
        );
    }
    if !plan.steps.is_empty() {
        let _ = writeln!(out, "\n{}", painted(BOLD, &"Kernel operations:"));
        let width = plan.steps.len().to_string().len();
        let mut last_cause = None;
        for (i, step) in plan.steps.iter().enumerate() {
            if step.cause != last_cause {
                last_cause = step.cause;
                let header = match step.cause {
                    Some(span) => {
                        let (file, at) = sources.position(span);
                        format!("{file}:{}: {}", at.line, statement_line(sources, span))
                    }
                    None => "(no statement)".into(),
                };
                let _ = writeln!(out, "  {}", painted(DIM, &format_args!("# {header}")));
            }
            let _ = writeln!(out, "  {:>width$}  {}", i + 1, step.op.command(etc_dir));
        }
    }
    let _ = writeln!(
        out,
        "\n{} {} to add, {} to change, {} to remove.",
        painted(BOLD, &"Plan:"),
        plan.count(ChangeAction::Add),
        plan.count(ChangeAction::Change),
        plan.count(ChangeAction::Remove),
    );
    out
}

/// The first line of a statement, as written.
fn statement_line(sources: &Sources, span: Span) -> String {
    let text = sources.text(span);
    let first = text.lines().next().unwrap_or_default().trim();
    if text.trim_end().contains('\n') {
        format!("{first} …")
    } else {
        first.to_string()
    }
}

#[derive(Serialize)]
struct JsonPlan<'a> {
    format_version: &'static str,
    changes: Vec<JsonChange<'a>>,
    steps: Vec<JsonStep<'a>>,
    summary: std::collections::BTreeMap<&'static str, usize>,
}

#[derive(Serialize)]
struct JsonChange<'a> {
    action: ChangeAction,
    kind: ObjectKind,
    name: &'a str,
    detail: &'a str,
}

#[derive(Serialize)]
struct JsonStep<'a> {
    index: usize,
    command: String,
    #[serde(flatten)]
    op: &'a Op,
    undo: Vec<JsonOp<'a>>,
    source: Option<JsonSource<'a>>,
}

#[derive(Serialize)]
struct JsonOp<'a> {
    command: String,
    #[serde(flatten)]
    op: &'a Op,
}

#[derive(Serialize)]
struct JsonSource<'a> {
    file: &'a str,
    #[serde(flatten)]
    location: Location,
    statement: String,
}

/// The plan as JSON; the layout is described in README.md ("Plan JSON").
pub fn json(plan: &Plan, sources: &Sources, etc_dir: &Path) -> String {
    let mut out = Vec::new();
    write_json(plan, sources, etc_dir, &mut out).expect("writing into memory cannot fail");
    String::from_utf8(out).expect("JSON is UTF-8")
}

/// The plan as JSON, streamed to `out` (a large plan is never held whole as text).
pub fn write_json(
    plan: &Plan,
    sources: &Sources,
    etc_dir: &Path,
    mut out: impl std::io::Write,
) -> std::io::Result<()> {
    let doc = JsonPlan {
        format_version: PLAN_FORMAT_VERSION,
        changes: plan
            .changes
            .iter()
            .map(|c| JsonChange {
                action: c.action,
                kind: c.kind,
                name: &c.name,
                detail: &c.detail,
            })
            .collect(),
        steps: plan
            .steps
            .iter()
            .enumerate()
            .map(|(i, step)| JsonStep {
                index: i + 1,
                command: step.op.command(etc_dir).to_string(),
                op: &step.op,
                undo: step
                    .undo
                    .iter()
                    .map(|op| JsonOp {
                        command: op.command(etc_dir).to_string(),
                        op,
                    })
                    .collect(),
                source: step.cause.map(|span| {
                    let (file, location) = sources.position(span);
                    JsonSource {
                        file,
                        location,
                        statement: statement_line(sources, span),
                    }
                }),
            })
            .collect(),
        summary: summary(plan),
    };
    serde_json::to_writer_pretty(&mut out, &doc)?;
    out.write_all(b"\n")
}

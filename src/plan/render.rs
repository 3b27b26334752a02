//! A plan as people read it (`cnm plan`) and as programs read it (`cnm plan --json`).

use std::borrow::Cow;
use std::fmt::Write as _;
use std::path::Path;

use anstyle::{AnsiColor, Style};
use serde::Serialize;

use super::words::push_number;
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
    // About a line per change and per step.
    let mut out = Vec::with_capacity(80 * (plan.changes.len() + plan.steps.len()));
    write_human(&mut out, plan, sources, etc_dir, color).expect("writing to memory");
    String::from_utf8(out).expect("a plan is UTF-8")
}

/// [`human`], written to `out` as it is made: no line of it is kept.
pub fn write_human(
    out: &mut dyn std::io::Write,
    plan: &Plan,
    sources: &Sources,
    etc_dir: &Path,
    color: bool,
) -> std::io::Result<()> {
    // An empty style writes nothing, nor does its reset.
    let style = |style: Style| if color { style } else { Style::new() };
    let (dim, bold) = (style(DIM), style(BOLD));
    if plan.is_empty() {
        return writeln!(out, "{NO_CHANGES}");
    }
    writeln!(out, "cnm will make these changes:\n")?;
    // `  {sign} {kind} {name} ({detail})`, painted; a line per object, so pushed
    // rather than formatted (only the styles are, when there are any).
    let mut line = String::new();
    for change in &plan.changes {
        let (sign, painted) = match change.action {
            ChangeAction::Add => ("+ ", style(ADD)),
            ChangeAction::Change => ("~ ", style(CHANGE)),
            ChangeAction::Remove => ("- ", style(REMOVE)),
        };
        line.clear();
        line.push_str("  ");
        push_style(&mut line, painted);
        for piece in [sign, change.kind.as_str(), " ", &change.name] {
            line.push_str(piece);
        }
        push_reset(&mut line, painted);
        line.push(' ');
        push_style(&mut line, dim);
        for piece in ["(", &change.detail, ")"] {
            line.push_str(piece);
        }
        push_reset(&mut line, dim);
        line.push('\n');
        out.write_all(line.as_bytes())?;
    }
    if !plan.steps.is_empty() {
        writeln!(out, "\n{bold}Kernel operations:{bold:#}")?;
        let width = plan.steps.len().to_string().len();
        let mut last_cause = None;
        let mut line = String::new();
        for (i, step) in plan.steps.iter().enumerate() {
            if step.cause != last_cause {
                last_cause = step.cause;
                write!(out, "  {dim}# ")?;
                match step.cause {
                    Some(span) => {
                        let (file, at) = sources.position(span);
                        write!(out, "{file}:{}: {}", at.line, statement_line(sources, span))?;
                    }
                    None => write!(out, "(no statement)")?,
                }
                writeln!(out, "{dim:#}")?;
            }
            // `  {number:>width$}  {command}`, without `core::fmt`: a line per step.
            line.clear();
            line.push_str("  ");
            push_number(&mut line, (i + 1) as u64);
            for _ in line.len() - 2..width {
                line.insert(2, ' ');
            }
            line.push_str("  ");
            step.op.command(etc_dir).push_to(&mut line);
            line.push('\n');
            out.write_all(line.as_bytes())?;
        }
    }
    writeln!(
        out,
        "\n{bold}Plan:{bold:#} {} to add, {} to change, {} to remove.",
        plan.count(ChangeAction::Add),
        plan.count(ChangeAction::Change),
        plan.count(ChangeAction::Remove),
    )
}

/// The escape sequence that starts `style`; none for a plain style.
fn push_style(line: &mut String, style: Style) {
    if !style.is_plain() {
        let _ = write!(line, "{}", style.render());
    }
}

/// The escape sequence that ends `style`; none for a plain style.
fn push_reset(line: &mut String, style: Style) {
    if !style.is_plain() {
        let _ = write!(line, "{}", style.render_reset());
    }
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
    op: Cow<'a, Op>,
}

fn json_op<'a>(op: Cow<'a, Op>, etc_dir: &Path) -> JsonOp<'a> {
    JsonOp {
        command: op.command(etc_dir).to_string(),
        op,
    }
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
                undo: match step.undo_ops() {
                    Cow::Borrowed(ops) => ops.iter().map(|op| json_op(Cow::Borrowed(op), etc_dir)).collect(),
                    Cow::Owned(ops) => ops
                        .into_iter()
                        .map(|op| json_op(Cow::Owned(op), etc_dir))
                        .collect(),
                },
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

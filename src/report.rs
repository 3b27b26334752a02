//! Reports drawn for people: miette diagnostics and reports, in colour only where
//! standard error is a terminal and `NO_COLOR` is unset.

use std::io::IsTerminal;

use miette::{GraphicalReportHandler, GraphicalTheme, LabeledSpan, MietteDiagnostic};

use crate::error::Diagnostic;
use crate::syntax::{Sources, Span};

/// Whether standard error wants colour: a terminal, and NO_COLOR unset.
pub fn colour() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// The width to draw for: `COLUMNS`, else 100.
pub fn terminal_width() -> usize {
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(100)
}

/// Diagnostics as miette draws them: message, source excerpt with labels, help.
pub fn render_diagnostics(
    sources: &Sources,
    diagnostics: &[Diagnostic],
    colour: bool,
    width: usize,
) -> String {
    diagnostics
        .iter()
        .map(|d| render_report(&d.render(sources), colour, width))
        .collect()
}

/// One miette report, drawn.
pub fn render_report(report: &dyn miette::Diagnostic, colour: bool, width: usize) -> String {
    let theme = if colour {
        GraphicalTheme::unicode()
    } else {
        GraphicalTheme::unicode_nocolor()
    };
    let mut text = String::new();
    GraphicalReportHandler::new_themed(theme)
        .with_width(width)
        .render_report(&mut text, report)
        .expect("rendering into a String cannot fail");
    text.push('\n');
    text
}

/// A diagnostic drawn under the statement it is about, labelled; without a statement
/// (`destroy`, `undo`), the label joins the message.
pub fn render_at(
    mut diagnostic: MietteDiagnostic,
    sources: &Sources,
    at: Option<Span>,
    label: String,
) -> String {
    match at {
        Some(span) => {
            diagnostic = diagnostic.with_label(LabeledSpan::new_primary_with_span(
                Some(label),
                span.source_span(),
            ));
            let report = miette::Report::new(diagnostic).with_source_code(sources.named_source(span.file));
            render_report(report.as_ref(), colour(), terminal_width())
        }
        None => {
            diagnostic.message.push_str(&format!(" ({label})"));
            render_report(&diagnostic, colour(), terminal_width())
        }
    }
}

/// `1 step`, `2 steps`.
pub fn plural(n: usize, word: &str) -> String {
    format!("{n} {word}{}", if n == 1 { "" } else { "s" })
}

//! `help` at the console, and the statement list of `cnm --help`, written from the one
//! table of statements ([`crate::check::usage`]) and the console's session commands.

use std::fmt::Write;

use super::console::COMMANDS;
use crate::check::usage::{statement, statements};

/// `help`: every statement and session command, one line each.
pub fn overview() -> String {
    let mut text = String::from("Statements (applied as typed, each its own transaction):\n");
    for s in statements() {
        let _ = writeln!(text, "  {:<11}{}", s.keyword, s.summary);
    }
    text.push_str("\nSession commands:\n");
    for (command, what) in COMMANDS {
        let _ = writeln!(text, "  {command:<11}{what}");
    }
    text.push_str("\n`help STATEMENT` shows its form, options and an example.\n");
    text
}

/// `help WORD`: a statement's form, options and example, or a session command's line.
pub fn topic(word: &str) -> Option<String> {
    if let Some(s) = statement(word) {
        let mut text = format!("{}\n  {}\n", s.usage, s.summary);
        if !s.described.is_empty() {
            text.push_str("\nOptions:\n");
            let width = s.described.iter().map(|(form, _)| form.len()).max().unwrap_or(0);
            for (form, what) in s.described {
                let _ = writeln!(text, "  {form:<width$}  {what}");
            }
        }
        text.push_str("\nExample:\n");
        for line in s.example.lines() {
            let _ = writeln!(text, "  {line}");
        }
        return Some(text);
    }
    COMMANDS
        .iter()
        .find(|(command, _)| *command == word)
        .map(|(command, what)| format!("{command}: {what} (a session command)\n"))
}

/// The statement list `cnm --help` ends with.
pub fn statement_list() -> String {
    let mut text = String::from("Statements of the language (`cnm repl`, then `help STATEMENT`, shows each one's options and an example):\n");
    for s in statements() {
        let _ = writeln!(text, "  {}", s.usage);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_statements_help_has_its_form_options_and_example() {
        let text = topic("connect").unwrap();
        assert!(text.starts_with("connect SANDBOX to NETWORK"), "{text}");
        assert!(text.contains("  ifname NAME "), "{text}");
        assert!(text.contains("Example:\n"), "{text}");
        assert!(text.contains("  connect A to backend"), "{text}");
    }

    #[test]
    fn the_overview_names_every_statement_and_command() {
        let text = overview();
        for s in statements() {
            assert!(text.contains(&format!("  {:<11}{}", s.keyword, s.summary)));
        }
        for (command, _) in COMMANDS {
            assert!(text.contains(&format!("  {command:<11}")), "{command}");
        }
        assert_eq!(
            topic("commit").unwrap(),
            format!("commit: {} (a session command)\n", COMMANDS[2].1)
        );
        assert_eq!(topic("nonsense"), None);
    }
}

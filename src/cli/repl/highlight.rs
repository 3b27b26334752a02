//! Colours for the line being typed: statement keywords, session commands, the fixed
//! words and options of a statement, names of the committed state, addresses and
//! CIDRs, variables and comments, each its own colour; a first word that is neither a
//! statement nor a command stands out in red. Only escape codes are added: the text
//! keeps its width, as the line editor needs.

use std::fmt::Write;
use std::net::IpAddr;

use anstyle::{AnsiColor, Style};
use ipnetwork::IpNetwork;

use super::names::Names;
use super::words::{tokens, Kind};
use crate::check::usage;
use crate::cli::console::is_command;

pub const KEYWORD: Style = AnsiColor::Blue.on_default().bold();
pub const COMMAND: Style = AnsiColor::Magenta.on_default().bold();
pub const UNKNOWN: Style = AnsiColor::Red.on_default().bold();
pub const OPTION: Style = AnsiColor::Cyan.on_default();
pub const NAME: Style = AnsiColor::Green.on_default();
pub const ADDRESS: Style = AnsiColor::Yellow.on_default();
pub const VARIABLE: Style = AnsiColor::Magenta.on_default();
pub const COMMENT: Style = Style::new().dimmed();

/// The words a statement's form holds besides its options.
const FIXED: &[&str] = &[
    "on", "to", "from", "in", "reaches", "cannot", "reach", "--", "network", "sandbox", "endpoint",
];

/// `line` with escape codes around the words that have a colour.
pub fn highlight(line: &str, names: &Names) -> String {
    let mut out = String::with_capacity(line.len() * 2);
    let mut done = 0;
    // The statement the words belong to: none before its first word, `Err` after an
    // unknown or a session command's first word.
    let mut statement: Option<Result<&'static usage::Statement, ()>> = None;
    for token in tokens(line) {
        let text = &line[token.start..token.end];
        let style = match token.kind {
            Kind::Separator | Kind::Brace => {
                statement = None;
                None
            }
            Kind::Comment => Some(COMMENT),
            Kind::Word => match statement {
                None => {
                    let known = usage::statement(text);
                    statement = Some(known.ok_or(()));
                    Some(match known {
                        Some(_) => KEYWORD,
                        None if is_command(text) => COMMAND,
                        None => UNKNOWN,
                    })
                }
                Some(s) => word_style(text, s.ok(), names),
            },
        };
        if let Some(style) = style {
            out.push_str(&line[done..token.start]);
            let _ = write!(out, "{}{text}{}", style.render(), style.render_reset());
            done = token.end;
        }
    }
    out.push_str(&line[done..]);
    out
}

fn word_style(text: &str, statement: Option<&usage::Statement>, names: &Names) -> Option<Style> {
    if text.contains('$') {
        Some(VARIABLE)
    } else if names.is_known(text) {
        Some(NAME)
    } else if is_address(text) {
        Some(ADDRESS)
    } else if statement.is_some_and(|s| s.options.contains(&text) || FIXED.contains(&text)) {
        Some(OPTION)
    } else {
        None
    }
}

/// An IP address, a CIDR or a MAC address.
fn is_address(text: &str) -> bool {
    text.parse::<IpAddr>().is_ok()
        || (text.contains('/') && text.parse::<IpNetwork>().is_ok())
        || (text.len() == 17
            && text
                .split(':')
                .all(|pair| pair.len() == 2 && pair.chars().all(|c| c.is_ascii_hexdigit())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::repl::names::names;

    fn paint(style: Style, text: &str) -> String {
        format!("{}{text}{}", style.render(), style.render_reset())
    }

    #[test]
    fn keywords_names_options_and_addresses_have_their_colours() {
        let names = names(&["backend"], &["web"], &[]);
        assert_eq!(
            highlight(
                "connect web to backend ip 10.1.0.5 mac 02:42:0a:01:00:05 alias db",
                &names
            ),
            format!(
                "{} {} {} {} {} {} {} {} {} db",
                paint(KEYWORD, "connect"),
                paint(NAME, "web"),
                paint(OPTION, "to"),
                paint(NAME, "backend"),
                paint(OPTION, "ip"),
                paint(ADDRESS, "10.1.0.5"),
                paint(OPTION, "mac"),
                paint(ADDRESS, "02:42:0a:01:00:05"),
                paint(OPTION, "alias"),
            )
        );
        assert_eq!(
            highlight("network n subnet 10.1.0.0/24  # cidr", &names),
            format!(
                "{} n {} {}  {}",
                paint(KEYWORD, "network"),
                paint(OPTION, "subnet"),
                paint(ADDRESS, "10.1.0.0/24"),
                paint(COMMENT, "# cidr")
            )
        );
    }

    #[test]
    fn an_unknown_first_word_is_red_and_commands_differ_from_statements() {
        let names = Names::default();
        assert_eq!(
            highlight("conect a to b; show", &names),
            format!("{} a to b; {}", paint(UNKNOWN, "conect"), paint(COMMAND, "show"))
        );
        assert_eq!(
            highlight("for i in 1..2 {\n  sandbox web$i\n}", &names),
            format!(
                "{} i {} 1..2 {{\n  {} {}\n}}",
                paint(KEYWORD, "for"),
                paint(OPTION, "in"),
                paint(KEYWORD, "sandbox"),
                paint(VARIABLE, "web$i")
            )
        );
    }

    #[test]
    fn the_text_is_unchanged_but_for_escape_codes() {
        let names = names(&["n"], &["a"], &[]);
        for line in [
            "",
            "  stop a  ",
            "sandbox 'half quoted",
            "x \\\n y",
            "exec a -- ip -br addr # c",
        ] {
            let painted = highlight(line, &names);
            let mut plain = String::new();
            let mut chars = painted.chars();
            while let Some(c) = chars.next() {
                if c == '\x1b' {
                    for c in chars.by_ref() {
                        if c == 'm' {
                            break;
                        }
                    }
                } else {
                    plain.push(c);
                }
            }
            assert_eq!(plain, line);
        }
    }
}

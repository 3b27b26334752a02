//! Whether typed text is a whole entry yet: an open `{`, an open quote or a trailing
//! `\` asks for more lines (the REPL shows its `...>` prompt; piped input reads on).

/// Whether `text` still needs more lines before it can be parsed.
pub fn needs_more(text: &str) -> bool {
    let mut depth: i64 = 0;
    let mut quote: Option<char> = None;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some('"'), '\\') => {
                chars.next();
            }
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '#') => {
                // A comment runs to the end of its line.
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
            }
            (None, '{') => depth += 1,
            (None, '}') => depth -= 1,
            (None, _) => {}
        }
    }
    quote.is_some() || depth > 0 || continued(text)
}

/// A last line that ends in `\`, outside a comment.
fn continued(text: &str) -> bool {
    let last = text
        .trim_end_matches(['\n', '\r'])
        .rsplit('\n')
        .next()
        .unwrap_or("");
    last.ends_with('\\') && !last.contains('#')
}

#[cfg(test)]
mod tests {
    use super::needs_more;

    #[test]
    fn open_blocks_quotes_and_backslashes_ask_for_more() {
        for text in [
            "for i in 1..3 {",
            "for i in 1..3 {\n  sandbox web$i",
            "for i in 1..2 {\n for j in 1..2 {\n }",
            "sandbox a hostname \"two",
            "sandbox a \\",
            "network n \\\n  subnet 10.0.0.0/24 \\",
        ] {
            assert!(needs_more(text), "{text:?}");
        }
        for text in [
            "",
            "network n",
            "for i in 1..3 {\n  sandbox web$i\n}",
            "sandbox a hostname \"{\"",
            "sandbox a hostname 'it''s'",
            "sandbox a # an open { in a comment",
            "sandbox a # ends in \\",
            "exec a -- echo \"\\\"\"",
            "}",
        ] {
            assert!(!needs_more(text), "{text:?}");
        }
    }
}

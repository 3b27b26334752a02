//! The words of a line as it is being typed: a forgiving lexer for completion and
//! highlighting, which must cope with half-typed text that the grammar would refuse
//! (an open quote, a block not closed yet).

/// What a piece of typed text is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A word, quotes and `$variables` included.
    Word,
    /// `;` or a line break: the next word starts a statement.
    Separator,
    /// `{` or `}`: the next word starts a statement too.
    Brace,
    /// `#` to the end of the line.
    Comment,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token {
    pub kind: Kind,
    /// Byte offsets into the line.
    pub start: usize,
    pub end: usize,
}

/// The tokens of `line`, in order; blanks and `\`-newline continuations between them are
/// left out.
pub fn tokens(line: &str) -> Vec<Token> {
    let bytes = line.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let start = i;
        let kind = match bytes[i] {
            b' ' | b'\t' | b'\r' => {
                i += 1;
                continue;
            }
            b'\\' if matches!(bytes.get(i + 1), None | Some(b'\n')) => {
                i += 2;
                continue;
            }
            b'\n' | b';' => {
                i += 1;
                Kind::Separator
            }
            b'{' | b'}' => {
                i += 1;
                Kind::Brace
            }
            b'#' => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
                Kind::Comment
            }
            _ => {
                i = word_end(bytes, i);
                Kind::Word
            }
        };
        tokens.push(Token {
            kind,
            start,
            end: i.min(bytes.len()),
        });
    }
    tokens
}

/// Where the word starting at `i` ends: at a blank or a separator outside quotes.
fn word_end(bytes: &[u8], mut i: usize) -> usize {
    let mut quote = None;
    while i < bytes.len() {
        let b = bytes[i];
        match (quote, b) {
            (Some(b'"'), b'\\') => i += 1,
            (Some(q), _) if b == q => quote = None,
            (Some(_), _) => {}
            (None, b'"' | b'\'') => quote = Some(b),
            (None, b' ' | b'\t' | b'\r' | b'\n' | b';' | b'#' | b'{' | b'}') => break,
            (None, b'\\') if matches!(bytes.get(i + 1), None | Some(b'\n')) => break,
            (None, _) => {}
        }
        i += 1;
    }
    i
}

/// The words of the statement the cursor at `pos` is in, up to the cursor: the whole
/// words before it, and the part of the word under it typed so far (empty after a blank)
/// with the offset where that part starts. `None` inside a comment.
pub fn at_cursor(line: &str, pos: usize) -> Option<(Vec<&str>, &str, usize)> {
    let mut words = Vec::new();
    for token in tokens(&line[..pos]) {
        match token.kind {
            Kind::Separator | Kind::Brace => words.clear(),
            Kind::Comment if token.end == pos => return None,
            Kind::Comment => {}
            Kind::Word => words.push(token),
        }
    }
    match words.last() {
        Some(last) if last.end == pos => {
            let partial = &line[last.start..pos];
            let start = last.start;
            words.pop();
            Some((
                words.iter().map(|t| &line[t.start..t.end]).collect(),
                partial,
                start,
            ))
        }
        _ => Some((words.iter().map(|t| &line[t.start..t.end]).collect(), "", pos)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(line: &str) -> Vec<(Kind, &str)> {
        tokens(line)
            .into_iter()
            .map(|t| (t.kind, &line[t.start..t.end]))
            .collect()
    }

    #[test]
    fn words_quotes_separators_and_comments() {
        use Kind::*;
        assert_eq!(
            texts("sandbox a hostname \"x y\"; for i in 1..2 { stop web$i } # done"),
            vec![
                (Word, "sandbox"),
                (Word, "a"),
                (Word, "hostname"),
                (Word, "\"x y\""),
                (Separator, ";"),
                (Word, "for"),
                (Word, "i"),
                (Word, "in"),
                (Word, "1..2"),
                (Brace, "{"),
                (Word, "stop"),
                (Word, "web$i"),
                (Brace, "}"),
                (Comment, "# done"),
            ]
        );
        assert_eq!(
            texts("network n \\\n  mtu 1400"),
            vec![(Word, "network"), (Word, "n"), (Word, "mtu"), (Word, "1400")]
        );
        assert_eq!(
            texts("sandbox 'open quote"),
            vec![(Word, "sandbox"), (Word, "'open quote")]
        );
    }

    #[test]
    fn the_statement_at_the_cursor() {
        assert_eq!(
            at_cursor("connect a to ba", 15),
            Some((vec!["connect", "a", "to"], "ba", 13))
        );
        assert_eq!(at_cursor("connect a ", 10), Some((vec!["connect", "a"], "", 10)));
        assert_eq!(at_cursor("stop a; sta", 11), Some((vec![], "sta", 8)));
        assert_eq!(at_cursor("for i in 1..2 {\n  con", 21), Some((vec![], "con", 18)));
        assert_eq!(at_cursor("stop a # sto", 12), None);
        // The cursor in the middle of the line: only what is before it counts.
        assert_eq!(at_cursor("remove sandbox web", 7), Some((vec!["remove"], "", 7)));
    }
}

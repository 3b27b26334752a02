//! Text to syntax tree, with pest. One function per grammar rule, each checking the
//! rule it was handed; pest's rule names are turned into words a user knows before an
//! error is shown.

use pest::iterators::Pair;
use pest::Parser as _;

use super::ast::*;
use super::source::{FileId, Span};
use crate::error::{Diagnostic, ErrorKind};

#[derive(pest_derive::Parser)]
#[grammar = "../grammar/cnm.pest"]
struct CnmParser;

/// Parses one file. A syntax error (an unclosed quote or block, a stray `}`) stops the
/// parse: it is the one error reported for that file.
pub fn parse(file: FileId, text: &str) -> Result<Script, Box<Diagnostic>> {
    let mut pairs = CnmParser::parse(Rule::script, text).map_err(|e| syntax_error(file, text, e))?;
    let script = pairs.next().expect("a script");
    Ok(Script {
        statements: statements(file, script.into_inner()),
    })
}

fn statements(file: FileId, pairs: pest::iterators::Pairs<Rule>) -> Vec<Statement> {
    pairs
        .filter(|p| p.as_rule() != Rule::EOI)
        .map(|p| statement(file, p))
        .collect()
}

fn statement(file: FileId, pair: Pair<Rule>) -> Statement {
    let span = span(file, &pair);
    let rule = pair.as_rule();
    let mut inner = pair.into_inner();
    // Every statement form but `unknown_stmt` starts with its keyword.
    let keyword = (rule != Rule::unknown_stmt).then(|| ident(file, &inner.next().expect("a keyword")));
    let mut words = Vec::new();
    let mut options = Vec::new();
    let mut tail = Vec::new();
    let mut body = Vec::new();
    let mut ident_parts = Vec::new();
    let mut reaches = true;
    for p in inner {
        match p.as_rule() {
            Rule::word => words.push(word(file, p)),
            Rule::ident => ident_parts.push(ident(file, &p)),
            Rule::network_opt
            | Rule::sandbox_opt
            | Rule::endpoint_opt
            | Rule::connect_opt
            | Rule::publish_opt
            | Rule::probe_opt => options.push(opt(file, p)),
            Rule::tail => tail = p.into_inner().map(|w| word(file, w)).collect(),
            Rule::block => body = statements(file, p.into_inner()),
            Rule::expect_verb => reaches = p.into_inner().count() == 1,
            Rule::kw_on | Rule::kw_to | Rule::kw_from | Rule::kw_in | Rule::dashdash => {}
            other => unreachable!("unexpected {other:?} in a statement"),
        }
    }
    let mut words = words.into_iter();
    let mut next = || words.next().expect("the grammar guarantees this word");
    let kind = match rule {
        Rule::network_stmt => StatementKind::Network {
            name: next(),
            options,
        },
        Rule::sandbox_stmt => StatementKind::Sandbox {
            name: next(),
            options,
        },
        Rule::endpoint_stmt => StatementKind::Endpoint {
            name: next(),
            network: next(),
            options,
        },
        Rule::connect_stmt => StatementKind::Connect {
            sandbox: next(),
            network: next(),
            options,
        },
        Rule::disconnect_stmt => StatementKind::Disconnect {
            sandbox: next(),
            network: next(),
        },
        Rule::remove_stmt => StatementKind::Remove {
            kind: next(),
            name: next(),
        },
        Rule::stop_stmt => StatementKind::Stop { sandbox: next() },
        Rule::start_stmt => StatementKind::Start { sandbox: next() },
        Rule::publish_stmt => StatementKind::Publish {
            sandbox: next(),
            ports: next(),
            options,
        },
        Rule::exec_stmt => StatementKind::Exec {
            sandbox: next(),
            command: words.collect(),
        },
        Rule::expect_stmt => StatementKind::Expect {
            sandbox: next(),
            reaches,
            target: next(),
            options,
        },
        Rule::serve_stmt => StatementKind::Serve {
            sandbox: next(),
            options,
        },
        Rule::let_stmt => StatementKind::Let {
            name: ident_parts.remove(0),
            value: next(),
        },
        Rule::for_stmt => StatementKind::For {
            var: ident_parts.remove(0),
            range: next(),
            body,
        },
        Rule::include_stmt => StatementKind::Include { path: next() },
        Rule::malformed_stmt => StatementKind::Malformed {
            keyword: keyword.expect("a malformed statement starts with its keyword"),
        },
        Rule::unknown_stmt => StatementKind::Unknown { word: next() },
        other => unreachable!("{other:?} is not a statement"),
    };
    Statement { kind, span, tail }
}

fn opt(file: FileId, pair: Pair<Rule>) -> Opt {
    let mut inner = pair.into_inner();
    let key = ident(file, &inner.next().expect("an option key"));
    Opt {
        key,
        values: inner.map(|w| word(file, w)).collect(),
    }
}

fn ident(file: FileId, pair: &Pair<Rule>) -> Ident {
    Ident {
        name: pair.as_str().to_string(),
        span: span(file, pair),
    }
}

fn word(file: FileId, pair: Pair<Rule>) -> Word {
    assert_eq!(pair.as_rule(), Rule::word);
    let span = span(file, &pair);
    let mut parts: Vec<WordPart> = Vec::new();
    for part in pair.into_inner() {
        word_part(file, part, &mut parts);
    }
    Word { parts, span }
}

/// Appends one part of a word, merging adjacent literal text.
fn word_part(file: FileId, pair: Pair<Rule>, parts: &mut Vec<WordPart>) {
    let literal = |parts: &mut Vec<WordPart>, text: &str| match parts.last_mut() {
        Some(WordPart::Literal(s)) => s.push_str(text),
        _ => parts.push(WordPart::Literal(text.to_string())),
    };
    match pair.as_rule() {
        Rule::bare | Rule::dq_text | Rule::sq_text => literal(parts, pair.as_str()),
        Rule::dq_escape => literal(parts, &pair.as_str()[1..]),
        Rule::var => {
            let span = span(file, &pair);
            let name = pair.into_inner().next().expect("a variable name");
            parts.push(WordPart::Var {
                name: name.as_str().to_string(),
                span,
            });
        }
        Rule::dquoted => {
            for p in pair.into_inner() {
                word_part(file, p, parts);
            }
            // `""` is an empty word, not no word.
            if parts.is_empty() {
                parts.push(WordPart::Literal(String::new()));
            }
        }
        Rule::squoted => {
            let text = pair.into_inner().next().map_or("", |p| p.as_str());
            literal(parts, text);
        }
        other => unreachable!("{other:?} is not part of a word"),
    }
}

fn span(file: FileId, pair: &Pair<Rule>) -> Span {
    let s = pair.as_span();
    Span::new(file, s.start(), s.end())
}

/// A pest error, with its rule names rewritten into what a user would call them. An
/// unclosed quote or block is reported at its opening character, where the mistake is,
/// rather than at the end of the file, where pest notices it.
fn syntax_error(file: FileId, text: &str, error: pest::error::Error<Rule>) -> Box<Diagnostic> {
    let (start, end) = match error.location {
        pest::error::InputLocation::Pos(p) => (p, p),
        pest::error::InputLocation::Span((s, e)) => (s, e),
    };
    if let Some((at, opener)) = unclosed(text).filter(|(at, _)| *at <= start) {
        let closer = if opener == '{' { '}' } else { opener };
        return Box::new(Diagnostic::new(
            ErrorKind::Unclosed { opener, closer },
            Span::new(file, at, at + 1),
        ));
    }
    let found = match text[start..].chars().next() {
        None => "end of file".to_string(),
        Some('\n') => "end of line".to_string(),
        Some(c) => format!("`{c}`"),
    };
    // Point at the offending character rather than at nothing; at the end of the file,
    // at the last word before it.
    let (start, end) = if end > start {
        (start, end)
    } else if let Some(c) = text[start..].chars().next() {
        (start, start + c.len_utf8())
    } else {
        match text.trim_end().char_indices().next_back() {
            Some((i, c)) => (i, i + c.len_utf8()),
            None => (start, end),
        }
    };
    let expected = match &error.variant {
        // Anything could have come instead of a stray `\`; say what it needs.
        _ if found == "`\\`" => "a line break after it".to_string(),
        pest::error::ErrorVariant::ParsingError { positives, .. } => describe(positives),
        pest::error::ErrorVariant::CustomError { message } => message.clone(),
    };
    Box::new(Diagnostic::new(
        ErrorKind::Syntax { found, expected },
        Span::new(file, start, end),
    ))
}

/// The first quote that is never closed, or else the last `{` that is never closed, as
/// the grammar reads them: `#` starts a comment outside quotes, `\` escapes the next
/// character, `${name}` is a variable and not a block.
fn unclosed(text: &str) -> Option<(usize, char)> {
    let bytes = text.as_bytes();
    let mut blocks = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'#' => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b'\\' => i += 1,
            b'"' => {
                let open = i;
                i += 1;
                loop {
                    match bytes.get(i) {
                        None => return Some((open, '"')),
                        Some(b'\\') => i += 2,
                        Some(b'"') => break,
                        Some(_) => i += 1,
                    }
                }
            }
            b'\'' => match bytes[i + 1..].iter().position(|b| *b == b'\'') {
                Some(offset) => i += offset + 1,
                None => return Some((i, '\'')),
            },
            b'$' if bytes.get(i + 1) == Some(&b'{') => {
                if let Some(offset) = bytes[i + 2..]
                    .iter()
                    .position(|b| !(b.is_ascii_alphanumeric() || *b == b'_'))
                {
                    if bytes[i + 2 + offset] == b'}' {
                        i += 2 + offset;
                    }
                }
            }
            b'{' => blocks.push(i),
            b'}' => {
                blocks.pop();
            }
            _ => {}
        }
        i += 1;
    }
    blocks.pop().map(|at| (at, '{'))
}

fn describe(rules: &[Rule]) -> String {
    let mut names: Vec<&str> = rules
        .iter()
        .map(|r| match r {
            Rule::EOI => "end of file",
            Rule::dquoted | Rule::dq_text | Rule::dq_escape => "a closing `\"`",
            Rule::squoted | Rule::sq_text => "a closing `'`",
            Rule::block => "`{`",
            Rule::var | Rule::ident => "a variable name",
            Rule::word | Rule::bare => "a word",
            _ => "a statement",
        })
        .collect();
    names.sort_unstable();
    names.dedup();
    match names.as_slice() {
        [] => "something else".to_string(),
        [one] => one.to_string(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

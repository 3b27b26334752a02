//! The syntax tree of a `.cnm` script: statements as written, every node with its span.
//!
//! Words are kept unexpanded (`web$i` is a literal and a variable); the checker expands
//! them, so the tree is the same whatever the variables hold.

use super::source::Span;

#[derive(Debug, Clone)]
pub struct Script {
    pub statements: Vec<Statement>,
}

/// One statement and the words after it that fit none of its options.
#[derive(Debug, Clone)]
pub struct Statement {
    pub kind: StatementKind,
    pub span: Span,
    pub tail: Vec<Word>,
}

#[derive(Debug, Clone)]
pub enum StatementKind {
    Network {
        name: Word,
        options: Vec<Opt>,
    },
    Sandbox {
        name: Word,
        options: Vec<Opt>,
    },
    Endpoint {
        name: Word,
        network: Word,
        options: Vec<Opt>,
    },
    Connect {
        sandbox: Word,
        network: Word,
        options: Vec<Opt>,
    },
    Disconnect {
        sandbox: Word,
        network: Word,
    },
    Remove {
        kind: Word,
        name: Word,
    },
    Stop {
        sandbox: Word,
    },
    Start {
        sandbox: Word,
    },
    Publish {
        sandbox: Word,
        ports: Word,
        options: Vec<Opt>,
    },
    Exec {
        sandbox: Word,
        command: Vec<Word>,
    },
    Expect {
        sandbox: Word,
        reaches: bool,
        target: Word,
        options: Vec<Opt>,
    },
    Serve {
        sandbox: Word,
        options: Vec<Opt>,
    },
    Let {
        name: Ident,
        value: Word,
    },
    For {
        var: Ident,
        range: Word,
        body: Vec<Statement>,
    },
    Include {
        path: Word,
    },
    /// A statement keyword whose words fit none of its forms.
    Malformed {
        keyword: Ident,
    },
    /// A line that starts with a word that is no statement keyword.
    Unknown {
        word: Word,
    },
}

/// `key value…`, or a flag such as `internal` with no values.
#[derive(Debug, Clone)]
pub struct Opt {
    pub key: Ident,
    pub values: Vec<Word>,
}

/// A bare identifier: a keyword, an option name, a variable name.
#[derive(Debug, Clone)]
pub struct Ident {
    pub name: String,
    pub span: Span,
}

/// A word as written: literal text and variable references, concatenated.
#[derive(Debug, Clone)]
pub struct Word {
    pub parts: Vec<WordPart>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WordPart {
    Literal(String),
    Var { name: String, span: Span },
}

impl Word {
    /// The text when the word has no variables in it.
    pub fn literal(&self) -> Option<String> {
        let mut text = String::new();
        for part in &self.parts {
            match part {
                WordPart::Literal(s) => text.push_str(s),
                WordPart::Var { .. } => return None,
            }
        }
        Some(text)
    }
}

//! The checker: a script's syntax tree, read against the committed model, becomes the
//! desired model. It expands variables, loops and includes, resolves every name, checks
//! every value, allocates addresses, and reports every error of the script at once.
//! Pure: it reads the script's files and nothing else.

mod actions;
mod bridge_ports;
mod connect;
mod default_network;
mod differences;
mod endpoint;
mod ipam;
mod lifecycle;
mod network;
mod sandbox;
mod suggest;
pub mod usage;
pub mod values;

use std::path::{Path, PathBuf};

use rustc_hash::{FxHashMap, FxHashSet};

pub use actions::{Action, Target};
pub use network::{LONGEST_PREFIX_V4, LONGEST_PREFIX_V6};
pub use suggest::closest as suggest_name;

use crate::error::{Diagnostic, ErrorKind};
use crate::model::{Model, ObjectKind};
use crate::syntax::{self, Ident, Opt, Sources, Span, Statement, StatementKind, Word, WordPart};

/// The most times one `for` loop may run.
const LOOP_LIMIT: u64 = 100_000;
/// The most turns all the loops of a script may run together (nested loops multiply).
const TOTAL_LOOP_LIMIT: u64 = 1_000_000;
/// How deep includes may nest.
const INCLUDE_DEPTH_LIMIT: usize = 32;
/// The most objects of one kind the checker makes room for before it starts: past that,
/// its tables grow as they fill (a loop of a million turns that declares the same
/// sandbox each time must not reserve for a million).
const RESERVE_LIMIT: usize = 100_000;
/// The most bytes one word may expand to, and all the script's words together: a
/// variable that doubles itself 33 times would otherwise take gigabytes.
const WORD_LIMIT: usize = 64 << 10;
/// (In bytes.)
const TOTAL_EXPANSION_LIMIT: usize = 64 << 20;

/// What a script asks for: the desired model, the statement behind each object it
/// touched, and the actions (`exec`, `expect`, `serve`) to run once it is applied.
#[derive(Debug)]
pub struct Checked {
    pub model: Model,
    pub causes: Causes,
    pub actions: Vec<Action>,
    /// The top-level variables after the script.
    pub variables: Variables,
}

/// The statements behind the objects a script touched.
#[derive(Debug, Default)]
pub struct Causes {
    /// By kind (networks, sandboxes, endpoints), then by name: one map entry per object,
    /// since a script of thousands of objects asks about each of them several times.
    by_kind: [FxHashMap<String, Statements>; 3],
}

#[derive(Debug, Clone, Copy)]
struct Statements {
    /// The statement that made the object: its declaration, or for an endpoint the
    /// statement that joined it to its sandbox (which gives it its interface).
    made: Option<Span>,
    /// The statement that last declared, changed or removed it.
    last: Span,
}

impl Causes {
    pub fn new() -> Causes {
        Causes::default()
    }

    fn reserve(&mut self, kind: ObjectKind, additional: usize) {
        self.by_kind[kind as usize].reserve(additional);
    }

    /// `span` makes the object (and is, so far, the last statement about it).
    pub fn made(&mut self, kind: ObjectKind, name: impl Into<String>, span: Span) {
        let statements = Statements {
            made: Some(span),
            last: span,
        };
        self.by_kind[kind as usize].insert(name.into(), statements);
    }

    /// `span` changes or removes the object.
    pub fn changed(&mut self, kind: ObjectKind, name: impl Into<String>, span: Span) {
        self.by_kind[kind as usize]
            .entry(name.into())
            .and_modify(|statements| statements.last = span)
            .or_insert(Statements {
                made: None,
                last: span,
            });
    }

    /// The statement that made the object, if this script made it.
    pub fn maker(&self, kind: ObjectKind, name: &str) -> Option<Span> {
        self.by_kind[kind as usize].get(name)?.made
    }

    /// The last statement of this script about the object.
    pub fn latest(&self, kind: ObjectKind, name: &str) -> Option<Span> {
        Some(self.by_kind[kind as usize].get(name)?.last)
    }
}

/// Top-level variables (`let`), by name: what a session keeps from one piece of source
/// to the next.
pub type Variables = std::collections::HashMap<String, String>;

/// Checks the already-loaded `files`, in order, as one script against `committed`.
pub fn check(
    sources: &mut Sources,
    files: &[syntax::FileId],
    committed: &Model,
) -> Result<Checked, Vec<Diagnostic>> {
    check_with(sources, files, committed, &Variables::new())
}

/// As [`check`], starting with `variables` set (a session's earlier `let`s); the
/// variables at the end come back in [`Checked::variables`].
pub fn check_with(
    sources: &mut Sources,
    files: &[syntax::FileId],
    committed: &Model,
    variables: &Variables,
) -> Result<Checked, Vec<Diagnostic>> {
    let mut checker = Checker::new(sources, committed, variables.clone());
    for &file in files {
        let path = checker.sources.get(file).name.clone();
        checker.include_stack = canonical(Path::new(&path)).into_iter().collect();
        let text = checker.sources.get(file).text.clone();
        match syntax::parse(file, &text) {
            Ok(script) => {
                checker.reserve(&script.statements);
                checker.statements(&script.statements);
            }
            Err(e) => checker.errors.push(*e),
        }
    }
    checker.check_bridge_ports();
    checker.check_static_macs();
    checker.finish()
}

/// How many sandbox and endpoint statements `statements` run, `turns` times each: a
/// loop over a range written out counts once per turn, any other loop once. An estimate
/// to make room with, at most [`RESERVE_LIMIT`] of each.
fn declarations(statements: &[Statement], turns: usize) -> (usize, usize) {
    let (mut sandboxes, mut endpoints) = (0usize, 0usize);
    for statement in statements {
        let (s, e) = match &statement.kind {
            StatementKind::Sandbox { .. } => (turns, 0),
            StatementKind::Connect { .. } | StatementKind::Endpoint { .. } => (0, turns),
            StatementKind::For { range, body, .. } => {
                let inner = range
                    .literal()
                    .and_then(|text| values::range(&text, LOOP_LIMIT).ok())
                    .and_then(|(start, end)| usize::try_from(end - start + 1).ok())
                    .unwrap_or(1);
                declarations(body, turns.saturating_mul(inner).min(RESERVE_LIMIT))
            }
            _ => (0, 0),
        };
        sandboxes = sandboxes.saturating_add(s);
        endpoints = endpoints.saturating_add(e);
    }
    (sandboxes.min(RESERVE_LIMIT), endpoints.min(RESERVE_LIMIT))
}

fn canonical(path: &Path) -> Option<PathBuf> {
    std::fs::canonicalize(path).ok()
}

struct Checker<'a> {
    sources: &'a mut Sources,
    model: Model,
    /// Variables, innermost scope last.
    scopes: Vec<Variables>,
    /// Objects declared by this script, and where.
    declared: FxHashMap<(ObjectKind, String), Span>,
    /// Objects whose declaration had errors: references to them raise nothing more.
    broken: FxHashSet<(ObjectKind, String)>,
    /// `(sandbox, network)` pairs connected by this script, and where.
    connected: FxHashMap<(String, String), Span>,
    /// Each sandbox's endpoints in join order.
    joined: FxHashMap<String, Vec<String>>,
    /// Host-side interface names in use, to keep derived ones unique.
    host_ifnames: FxHashSet<String>,
    /// Endpoints made by the statement being checked, waiting for their addresses.
    pending: Vec<ipam::PendingAddress>,
    /// Endpoints made by this script that got their addresses, in statement order.
    allocated: Vec<ipam::PendingAddress>,
    /// The address pools, kept while no address is let go.
    pools: Option<ipam::Pools>,
    /// Networks already reported full.
    exhausted: FxHashSet<String>,
    causes: Causes,
    actions: Vec<Action>,
    errors: Vec<Diagnostic>,
    include_stack: Vec<PathBuf>,
    /// Loop turns run so far, against TOTAL_LOOP_LIMIT.
    loop_turns: u64,
    /// Bytes of words expanded so far, against TOTAL_EXPANSION_LIMIT.
    expanded: usize,
}

impl<'a> Checker<'a> {
    fn new(sources: &'a mut Sources, committed: &Model, variables: Variables) -> Checker<'a> {
        let model = committed.clone();
        let mut joined: FxHashMap<String, Vec<String>> = FxHashMap::default();
        for endpoint in model.endpoints.values() {
            if let Some(sandbox) = &endpoint.sandbox {
                joined
                    .entry(sandbox.clone())
                    .or_default()
                    .push(endpoint.name.clone());
            }
        }
        let host_ifnames = model.endpoints.values().map(|e| e.host_ifname.clone()).collect();
        Checker {
            sources,
            model,
            scopes: vec![variables],
            declared: FxHashMap::default(),
            broken: FxHashSet::default(),
            connected: FxHashMap::default(),
            joined,
            host_ifnames,
            pending: Vec::new(),
            allocated: Vec::new(),
            pools: None,
            exhausted: FxHashSet::default(),
            causes: Causes::new(),
            actions: Vec::new(),
            errors: Vec::new(),
            include_stack: Vec::new(),
            loop_turns: 0,
            expanded: 0,
        }
    }

    fn finish(self) -> Result<Checked, Vec<Diagnostic>> {
        if self.errors.is_empty() {
            let variables = self.scopes.into_iter().next().expect("the top-level scope");
            return Ok(Checked {
                model: self.model,
                causes: self.causes,
                actions: self.actions,
                variables,
            });
        }
        // A loop body repeats its errors once per turn, each naming that turn's values
        // (`web1`, `web2`, …): report each place's error once, from the first turn.
        let mut seen = FxHashSet::default();
        let mut errors = self.errors;
        errors.retain(|e| seen.insert((e.span, e.kind.code())));
        Err(errors)
    }

    fn error(&mut self, kind: ErrorKind, span: Span) {
        self.errors.push(Diagnostic::new(kind, span));
    }

    fn statements(&mut self, statements: &[Statement]) {
        for statement in statements {
            self.statement(statement);
        }
    }

    fn statement(&mut self, statement: &Statement) {
        let span = statement.span;
        match &statement.kind {
            StatementKind::Network { name, options } => self.network(span, name, options),
            StatementKind::Sandbox { name, options } => self.sandbox(span, name, options),
            StatementKind::Endpoint {
                name,
                network,
                options,
            } => self.endpoint(span, name, network, options),
            StatementKind::Connect {
                sandbox,
                network,
                options,
            } => self.connect(span, sandbox, network, options),
            StatementKind::Disconnect { sandbox, network } => self.disconnect(span, sandbox, network),
            StatementKind::Remove { kind, name } => self.remove(span, kind, name),
            StatementKind::Stop { sandbox } => self.set_running(span, sandbox, false),
            StatementKind::Start { sandbox } => self.set_running(span, sandbox, true),
            StatementKind::Publish {
                sandbox,
                ports,
                options,
            } => self.publish(span, sandbox, ports, options),
            StatementKind::Exec { sandbox, command } => self.exec(span, sandbox, command),
            StatementKind::Expect {
                sandbox,
                reaches,
                target,
                options,
            } => self.expect(span, sandbox, *reaches, target, options),
            StatementKind::Serve { sandbox, options } => self.serve(span, sandbox, options),
            StatementKind::Let { name, value } => {
                if let Some(value) = self.expand(value) {
                    self.scopes
                        .last_mut()
                        .expect("a scope")
                        .insert(name.name.clone(), value);
                }
            }
            StatementKind::For { var, range, body } => self.for_loop(var, range, body),
            StatementKind::Include { path } => self.include(span, path),
            StatementKind::Malformed { keyword } => self.error(
                ErrorKind::MalformedStatement {
                    keyword: keyword.name.clone(),
                    usage: usage::usage(&keyword.name),
                },
                span,
            ),
            StatementKind::Unknown { word } => {
                let text = self.sources.text(word.span).to_string();
                let suggestion = suggest::closest(&text, usage::keywords());
                self.error(
                    ErrorKind::UnknownStatement {
                        word: text,
                        suggestion,
                    },
                    word.span,
                );
            }
        }
        // After the statement's own errors, so that errors come in the order of the words.
        if let Some(first) = statement.tail.first() {
            self.unknown_option(statement, first);
        }
        // As if the statement were applied now: the next one sees its addresses taken.
        self.allocate_addresses();
    }

    /// The first word after a statement that fits none of its options.
    fn unknown_option(&mut self, statement: &Statement, word: &Word) {
        let keyword = statement_keyword(&statement.kind);
        let text = self.sources.text(word.span).to_string();
        let suggestion = suggest::closest(&text, usage::options(keyword).iter().copied());
        self.error(
            ErrorKind::UnknownOption {
                statement: usage::keyword(keyword),
                option: text,
                suggestion,
                usage: usage::usage(keyword),
            },
            word.span,
        );
    }

    fn for_loop(&mut self, var: &Ident, range: &Word, body: &[Statement]) {
        let Some(text) = self.expand(range) else { return };
        let (start, end) = match values::range(&text, LOOP_LIMIT) {
            Ok(bounds) => bounds,
            Err(reason) => return self.error(ErrorKind::BadRange { text, reason }, range.span),
        };
        for i in start..=end {
            self.loop_turns += 1;
            if self.loop_turns > TOTAL_LOOP_LIMIT {
                // Said once; every loop still running stops quietly.
                if self.loop_turns > TOTAL_LOOP_LIMIT + 1 {
                    return;
                }
                let reason =
                    format!("the script's loops would run more than {TOTAL_LOOP_LIMIT} times in all");
                return self.error(ErrorKind::BadRange { text, reason }, range.span);
            }
            self.scopes
                .push(Variables::from([(var.name.clone(), i.to_string())]));
            self.statements(body);
            self.scopes.pop();
        }
    }

    /// Makes room for what `statements` declare, so that a script of thousands of
    /// sandboxes does not grow the tables by doubling (copying them each time, into
    /// fresh pages).
    fn reserve(&mut self, statements: &[Statement]) {
        let (sandboxes, endpoints) = declarations(statements, 1);
        self.model.sandboxes.reserve(sandboxes);
        self.model.endpoints.reserve(endpoints);
        self.causes.reserve(ObjectKind::Sandbox, sandboxes);
        self.causes.reserve(ObjectKind::Endpoint, endpoints);
        self.declared.reserve(sandboxes + endpoints);
        self.connected.reserve(endpoints);
        self.joined.reserve(sandboxes);
        self.host_ifnames.reserve(endpoints);
        self.allocated.reserve(endpoints);
    }

    fn include(&mut self, span: Span, path: &Word) {
        let Some(text) = self.expand(path) else { return };
        let including = Path::new(&self.sources.get(span.file).name);
        let resolved = including.parent().unwrap_or(Path::new("")).join(&text);
        let unreadable = |reason: String| ErrorKind::IncludeUnreadable {
            path: text.clone(),
            reason,
        };
        if self.include_stack.len() >= INCLUDE_DEPTH_LIMIT {
            let reason = format!("includes nest more than {INCLUDE_DEPTH_LIMIT} deep");
            return self.error(unreadable(reason), path.span);
        }
        let contents = match syntax::read::script_file(&resolved) {
            Ok(contents) => contents,
            Err(reason) => return self.error(unreadable(reason), path.span),
        };
        let Some(canonical) = canonical(&resolved) else {
            return self.error(unreadable("cannot resolve its path".into()), path.span);
        };
        if let Some(at) = self.include_stack.iter().position(|p| *p == canonical) {
            let chain: Vec<String> = self.include_stack[at..]
                .iter()
                .chain([&canonical])
                .map(|p| p.file_name().unwrap_or_default().to_string_lossy().into_owned())
                .collect();
            return self.error(
                ErrorKind::IncludeCycle {
                    chain: chain.join(" → "),
                },
                path.span,
            );
        }
        let file = self.sources.add(resolved.to_string_lossy(), contents.as_str());
        match syntax::parse(file, &contents) {
            Ok(script) => {
                self.include_stack.push(canonical);
                self.statements(&script.statements);
                self.include_stack.pop();
            }
            Err(e) => self.errors.push(*e),
        }
    }

    // ---- words and options ---------------------------------------------------------

    /// A word with its variables replaced; `None` (and an error) if one is undefined.
    fn expand(&mut self, word: &Word) -> Option<String> {
        if self.expanded > TOTAL_EXPANSION_LIMIT {
            return None;
        }
        let mut text = String::new();
        for part in &word.parts {
            let added = match part {
                WordPart::Literal(s) => s.len(),
                WordPart::Var { name, .. } => self.lookup(name).map_or(0, String::len),
            };
            if text.len() + added > WORD_LIMIT {
                // Said once: a variable that grew too long would say it at every use.
                if !self.errors.iter().any(|e| e.kind.code() == "expansion-too-long") {
                    let reason = format!("it would expand to more than {} KiB", WORD_LIMIT >> 10);
                    self.error(ErrorKind::ExpansionTooLong { reason }, word.span);
                }
                return None;
            }
            match part {
                WordPart::Literal(s) => text.push_str(s),
                WordPart::Var { name, span } => match self.lookup(name) {
                    Some(value) => text.push_str(value),
                    None => {
                        let suggestion = suggest::closest(
                            name,
                            self.scopes.iter().flat_map(|s| s.keys().map(String::as_str)),
                        );
                        self.error(
                            ErrorKind::UndefinedVariable {
                                name: name.clone(),
                                suggestion,
                            },
                            *span,
                        );
                        return None;
                    }
                },
            }
        }
        self.expanded += text.len();
        if self.expanded > TOTAL_EXPANSION_LIMIT {
            let reason = format!(
                "the script's words would expand to more than {} MiB in all",
                TOTAL_EXPANSION_LIMIT >> 20
            );
            self.error(ErrorKind::ExpansionTooLong { reason }, word.span);
            return None;
        }
        Some(text)
    }

    fn lookup(&self, name: &str) -> Option<&String> {
        self.scopes.iter().rev().find_map(|scope| scope.get(name))
    }

    /// A word expanded and parsed; `None` (and an error at the word) if it is not valid.
    fn value<T, E: Into<String>>(
        &mut self,
        word: &Word,
        what: &'static str,
        parse: impl FnOnce(&str) -> Result<T, E>,
    ) -> Option<T> {
        let text = self.expand(word)?;
        match parse(&text) {
            Ok(value) => Some(value),
            Err(reason) => {
                self.error(
                    ErrorKind::InvalidValue {
                        what,
                        value: text,
                        reason: reason.into(),
                    },
                    word.span,
                );
                None
            }
        }
    }

    /// An object name, expanded and validated.
    fn name(&mut self, word: &Word) -> Option<String> {
        let text = self.expand(word)?;
        match values::name(&text) {
            Ok(()) => Some(text),
            Err(reason) => {
                self.error(ErrorKind::InvalidName { name: text, reason }, word.span);
                None
            }
        }
    }

    /// The options of one statement by key; a key given twice is an error.
    fn options<'o>(&mut self, options: &'o [Opt]) -> FxHashMap<&'o str, &'o Opt> {
        let mut by_key = FxHashMap::default();
        for option in options {
            if by_key.insert(option.key.name.as_str(), option).is_some() {
                self.error(
                    ErrorKind::RepeatedOption {
                        option: option.key.name.clone(),
                    },
                    option.key.span,
                );
            }
        }
        by_key
    }

    /// The one value of an option; an error if it has none.
    fn single<'o>(&mut self, option: &'o Opt, keyword: &str) -> Option<&'o Word> {
        let value = option.values.first();
        if value.is_none() {
            self.missing_value(option, keyword);
        }
        value
    }

    /// Every value of a list option (`alias`, `dns`), expanded; an error if it has none.
    fn list(&mut self, option: &Opt, keyword: &str) -> Option<Vec<(String, Span)>> {
        if option.values.is_empty() {
            self.missing_value(option, keyword);
            return None;
        }
        option
            .values
            .iter()
            .map(|w| self.expand(w).map(|text| (text, w.span)))
            .collect()
    }

    fn missing_value(&mut self, option: &Opt, keyword: &str) {
        self.error(
            ErrorKind::MissingValue {
                option: option.key.name.clone(),
                usage: usage::usage(keyword),
            },
            option.key.span,
        );
    }

    // ---- references ----------------------------------------------------------------

    /// Resolves a reference to an existing object. Unknown names are errors, with a
    /// did-you-mean; names whose own declaration failed resolve to `None` silently.
    fn reference(&mut self, kind: ObjectKind, word: &Word) -> Option<String> {
        let name = self.expand(word)?;
        let known = match kind {
            ObjectKind::Network => self.model.networks.contains_key(&name),
            ObjectKind::Sandbox => self.model.sandboxes.contains_key(&name),
            ObjectKind::Endpoint => self.model.endpoints.contains_key(&name),
        };
        if known {
            return Some(name);
        }
        if !self.broken.contains(&(kind, name.clone())) {
            let known: Vec<&str> = match kind {
                ObjectKind::Network => self.model.networks.keys().map(String::as_str).collect(),
                ObjectKind::Sandbox => self.model.sandboxes.keys().map(String::as_str).collect(),
                ObjectKind::Endpoint => self.model.endpoints.keys().map(String::as_str).collect(),
            };
            // A name whose declaration failed is still what the user meant to write.
            let broken = self
                .broken
                .iter()
                .filter(|(k, _)| *k == kind)
                .map(|(_, n)| n.as_str());
            let suggestion = suggest::closest(&name, known.into_iter().chain(broken));
            self.error(
                ErrorKind::UnknownReference {
                    kind,
                    name,
                    suggestion,
                },
                word.span,
            );
        }
        None
    }

    /// Records a declaration; a second one of the same name in this script is an error.
    fn declare(&mut self, kind: ObjectKind, name: &str, span: Span) -> bool {
        if let Some(first) = self.declared.get(&(kind, name.to_string())) {
            let first = *first;
            self.errors.push(
                Diagnostic::new(
                    ErrorKind::Duplicate {
                        kind,
                        name: name.to_string(),
                    },
                    span,
                )
                .with_related(first, "first declared here"),
            );
            return false;
        }
        self.declared.insert((kind, name.to_string()), span);
        true
    }
}

/// The keyword of a statement form (for usage lines and option suggestions).
fn statement_keyword(kind: &StatementKind) -> &'static str {
    match kind {
        StatementKind::Network { .. } => "network",
        StatementKind::Sandbox { .. } => "sandbox",
        StatementKind::Endpoint { .. } => "endpoint",
        StatementKind::Connect { .. } => "connect",
        StatementKind::Disconnect { .. } => "disconnect",
        StatementKind::Remove { .. } => "remove",
        StatementKind::Stop { .. } => "stop",
        StatementKind::Start { .. } => "start",
        StatementKind::Publish { .. } => "publish",
        StatementKind::Exec { .. } => "exec",
        StatementKind::Expect { .. } => "expect",
        StatementKind::Serve { .. } => "serve",
        StatementKind::Let { .. } => "let",
        StatementKind::For { .. } => "for",
        StatementKind::Include { .. } => "include",
        StatementKind::Malformed { .. } | StatementKind::Unknown { .. } => {
            unreachable!("malformed and unknown statements have no options")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counted(text: &str) -> (usize, usize) {
        let script = syntax::parse(syntax::FileId(0), text).expect("the script parses");
        declarations(&script.statements, 1)
    }

    #[test]
    fn room_is_made_for_every_turn_of_loops_written_out_and_no_more_than_the_limit() {
        let nested = "network n\nsandbox a\nfor i in 1..10 {\n  for j in 0..4 {\n    sandbox s$i-$j\n    connect s$i-$j to n\n    endpoint e$i-$j on n\n  }\n}\n";
        assert_eq!(counted(nested), (1 + 50, 100));
        // A range made of variables counts one turn: its length is known only later.
        assert_eq!(counted("let k = 9\nfor i in 1..$k {\n  sandbox s$i\n}\n"), (1, 0));
        let huge = "for i in 1..100000 {\n  for j in 1..100000 {\n    sandbox s\n  }\n}\n";
        assert_eq!(counted(huge), (RESERVE_LIMIT, 0));
    }
}

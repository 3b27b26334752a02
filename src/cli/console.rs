//! The console: what one entry typed at the REPL (or read from piped input) does. An
//! entry is a statement of the language, applied at once as its own transaction, or a
//! session command (`plan`, `begin`, `commit`, `show`, `undo`, …). Errors are reported
//! and the console goes on.

use std::io::Write;
use std::path::PathBuf;

use super::{actions, apply, show, Failure, Settings};
use crate::exec::Progress;
use crate::plan::{self, Op, Plan};
use crate::report::plural;
use crate::session::Session;
use crate::syntax::Sources;

/// Session commands: the first word of an entry that is not a statement of the
/// language, with a one-line summary for `help`.
pub const COMMANDS: &[(&str, &str)] = &[
    ("plan", "what the open transaction would do"),
    ("begin", "start a transaction: statements are queued until commit"),
    ("commit", "apply the queued statements as one transaction"),
    ("abort", "drop the queued statements"),
    (
        "dry-run",
        "dry-run on|off: simulate statements on an in-memory kernel",
    ),
    (
        "show",
        "the networks, sandboxes and endpoints of the committed state",
    ),
    ("inspect", "inspect NAME: a network, sandbox or endpoint as JSON"),
    ("log", "the transaction history"),
    ("undo", "take back the last committed transaction"),
    ("exec", "exec SANDBOX -- CMD…: run a command inside a sandbox"),
    (
        "source",
        "source FILE: apply a script (queued inside a transaction)",
    ),
    (
        "save",
        "save FILE: write the committed state as a script that recreates it",
    ),
    ("graph", "graph [mermaid|dot]: draw the committed topology"),
    (
        "help",
        "help [STATEMENT]: statements and commands; a statement's options and example",
    ),
    (
        "history",
        "the entries typed so far, numbered (at the interactive prompt)",
    ),
    ("exit", "leave (an open transaction is aborted)"),
];

/// How an entry ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Done,
    Failed,
    /// `exit`: the caller leaves.
    Exit,
}

pub struct Console {
    settings: Settings,
    session: Session,
    /// The statements of an open transaction (`begin`), as typed.
    queued: Option<String>,
    dry_run: bool,
    /// What errors are shown as the source of an entry (`<stdin>`, `<input>`).
    source_name: String,
    /// Responders started by `serve`: they answer until the console ends.
    responders: Vec<crate::probe::Responder>,
}

impl Console {
    pub fn new(settings: Settings, source_name: &str) -> Console {
        let session = settings.session();
        apply::stop_on_signals(&session);
        Console {
            settings,
            session,
            queued: None,
            dry_run: false,
            source_name: source_name.to_string(),
            responders: Vec::new(),
        }
    }

    pub fn session(&mut self) -> &mut Session {
        &mut self.session
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Whether statements are being queued for one transaction.
    pub fn in_transaction(&self) -> bool {
        self.queued.is_some()
    }

    pub fn dry_run(&self) -> bool {
        self.dry_run
    }

    /// Aborts an open transaction, if any; says so. For leaving.
    pub fn abort(&mut self) -> bool {
        match self.queued.take() {
            Some(queued) => {
                note!(
                    "cnm: the open transaction was aborted: {} not applied",
                    plural(statement_count(&queued), "queued statement")
                );
                true
            }
            None => false,
        }
    }

    /// Runs one whole entry; `line` is where it starts in the input, for messages.
    pub fn run(&mut self, entry: &str, line: usize) -> Outcome {
        let words: Vec<&str> = entry.split_whitespace().collect();
        let first_line = entry.lines().next().unwrap_or("").trim();
        self.session
            .set_command_line(format!("cnm console: {first_line}"));
        let result = match words.as_slice() {
            [] => Ok(()),
            ["exit" | "quit"] => return Outcome::Exit,
            ["plan"] => self.plan(),
            ["begin"] => self.begin(),
            ["commit"] => self.commit(),
            ["abort"] => {
                if !self.abort() {
                    note!("cnm: no transaction is open");
                }
                Ok(())
            }
            ["dry-run", "on"] => {
                self.dry_run = true;
                Ok(())
            }
            ["dry-run", "off"] => {
                self.dry_run = false;
                Ok(())
            }
            ["dry-run"] => {
                say!("dry-run is {}", if self.dry_run { "on" } else { "off" });
                Ok(())
            }
            ["show"] => show::show(&self.settings).map(drop),
            ["inspect", name] => show::inspect(&self.settings, name).map(drop),
            ["log"] => show::log(&self.settings).map(drop),
            ["undo"] => self.undo(),
            ["exec", sandbox, "--", command @ ..] if !command.is_empty() => {
                let command: Vec<String> = command.iter().map(|w| w.to_string()).collect();
                actions::exec(&self.settings, sandbox, &command).map_err(Failure::Message)
            }
            ["source", file] => self.source(&PathBuf::from(file)),
            ["save", file] => self.save(&PathBuf::from(file)),
            ["graph"] => self.graph(crate::graph::Format::Mermaid),
            ["graph", "mermaid"] => self.graph(crate::graph::Format::Mermaid),
            ["graph", "dot"] => self.graph(crate::graph::Format::Dot),
            ["help"] => {
                print!("{}", super::help::overview());
                Ok(())
            }
            ["help", word] => match super::help::topic(word) {
                Some(text) => {
                    print!("{text}");
                    Ok(())
                }
                None => Err(Failure::Message(format!(
                    "`{word}` is neither a statement nor a session command; `help` lists them"
                ))),
            },
            ["history"] => Err(Failure::Message(
                "`history` lists what was typed at the interactive prompt (`cnm repl`)".into(),
            )),
            [command, ..] if is_command(command) => Err(Failure::Message(format!(
                "`{command}` takes other words: {}",
                COMMANDS
                    .iter()
                    .find(|(c, _)| c == command)
                    .map_or("", |(_, what)| what)
            ))),
            _ => self.statements(entry, line),
        };
        match result {
            Ok(()) => Outcome::Done,
            Err(failure) => {
                let _ = std::io::stderr().write_all(failure.render().as_bytes());
                Outcome::Failed
            }
        }
    }

    /// Statements: queued in an open transaction (after checking them with what is
    /// queued), else applied at once (or simulated, with dry-run on).
    fn statements(&mut self, entry: &str, line: usize) -> Result<(), Failure> {
        // Blank lines before it, so that messages give the line where it was typed.
        let text = format!("{}{entry}\n", "\n".repeat(line.saturating_sub(1)));
        if let Some(queued) = &self.queued {
            let mut sources = Sources::default();
            let id = sources.add(&self.source_name, format!("{queued}{text}"));
            self.session.check(&mut sources, &[id])?;
            let queued = self.queued.as_mut().expect("checked above");
            queued.push_str(&format!("{entry}\n"));
            say!(
                "queued ({} in this transaction; `commit` applies them)",
                plural(statement_count(queued), "statement")
            );
            return Ok(());
        }
        let mut sources = Sources::default();
        let id = sources.add(&self.source_name, text);
        self.apply(&mut sources, &[id])
    }

    fn apply(&mut self, sources: &mut Sources, files: &[crate::syntax::FileId]) -> Result<(), Failure> {
        let mut progress = Quiet;
        let applied = if self.dry_run {
            self.session.dry_run(sources, files, &mut progress)?
        } else {
            // A responder holds its sandbox's namespace: it stops before the namespace
            // goes, or the namespace's veths would never be removed.
            let responders = &mut self.responders;
            let mut stop_departing = |checked: &crate::check::Checked, _: &Sources| {
                responders.retain(|responder| {
                    let stays = responder
                        .sandbox()
                        .is_none_or(|name| checked.model.sandboxes.get(name).is_some_and(|s| s.is_running()));
                    if !stays {
                        note!(
                            "cnm: serve {} {} port {} ends: the sandbox goes",
                            responder.sandbox().unwrap_or_default(),
                            responder.protocol,
                            responder.port
                        );
                    }
                    stays
                });
                Ok(())
            };
            self.session
                .apply_vetted(sources, files, &mut progress, &mut stop_departing)?
        };
        apply::warn_unpublished(&applied.model, &applied.actions, sources);
        self.print_operations(&applied.plan, if self.dry_run { "simulated" } else { "applied" });
        if self.dry_run {
            return Ok(());
        }
        let outcomes = actions::run(
            &self.settings,
            &applied.model,
            &applied.actions,
            sources,
            &mut self.responders,
        );
        match actions::print(&outcomes) {
            0 => Ok(()),
            failed => Err(Failure::Message(format!(
                "{} failed",
                plural(failed, "statement")
            ))),
        }
    }

    /// The operations a transaction carried out, then a one-line summary.
    fn print_operations(&self, plan: &Plan, verb: &str) {
        let mut out = std::io::stdout().lock();
        for step in &plan.steps {
            let _ = writeln!(out, "  {}", step.op.command(&self.settings.etc_dir));
        }
        if !plan.steps.is_empty() {
            let _ = writeln!(
                out,
                "{}: {} ({} added, {} changed, {} removed)",
                verb,
                plural(plan.steps.len(), "kernel operation"),
                plan.count(plan::ChangeAction::Add),
                plan.count(plan::ChangeAction::Change),
                plan.count(plan::ChangeAction::Remove),
            );
        }
    }

    fn plan(&mut self) -> Result<(), Failure> {
        let Some(queued) = &self.queued else {
            say!("No transaction is open: each statement is applied as it is typed (`begin` opens one).");
            return Ok(());
        };
        let mut sources = Sources::default();
        let id = sources.add(&self.source_name, queued.clone());
        let (_, plan) = self.session.plan(&mut sources, &[id])?;
        super::print_human_plan(&plan, &sources, &self.settings.etc_dir);
        Ok(())
    }

    fn begin(&mut self) -> Result<(), Failure> {
        if self.queued.is_some() {
            return Err(Failure::Message(
                "a transaction is already open: `commit` or `abort` it first".into(),
            ));
        }
        self.queued = Some(String::new());
        say!("transaction open: statements are queued until `commit` (or `abort`)");
        Ok(())
    }

    fn commit(&mut self) -> Result<(), Failure> {
        let Some(queued) = self.queued.take() else {
            return Err(Failure::Message(
                "no transaction is open (`begin` opens one)".into(),
            ));
        };
        let mut sources = Sources::default();
        let id = sources.add(&self.source_name, queued);
        self.apply(&mut sources, &[id])
    }

    fn undo(&mut self) -> Result<(), Failure> {
        if self.queued.is_some() {
            return Err(Failure::Message(
                "a transaction is open: `commit` or `abort` it before `undo`".into(),
            ));
        }
        match self.session.undo(&mut Quiet)? {
            None => say!("Nothing to undo."),
            Some((undone, applied)) => {
                say!("undid transaction {undone}");
                self.print_operations(&applied.plan, "applied");
            }
        }
        Ok(())
    }

    /// The committed state as a script (`cnm export`), written to `file`.
    fn save(&mut self, file: &PathBuf) -> Result<(), Failure> {
        let model = self.session.committed()?;
        std::fs::write(file, crate::export::script(&model)).map_err(|e| {
            Failure::Message(format!(
                "cannot write {}: {}",
                file.display(),
                crate::io_reason::io_reason(&e)
            ))
        })?;
        say!("saved the committed state to {}", file.display());
        Ok(())
    }

    fn graph(&mut self, format: crate::graph::Format) -> Result<(), Failure> {
        let model = self.session.committed()?;
        print!("{}", crate::graph::render(&model, format));
        Ok(())
    }

    /// A script file: queued whole in an open transaction, else applied as one.
    fn source(&mut self, file: &PathBuf) -> Result<(), Failure> {
        let (mut sources, ids) = super::load(std::slice::from_ref(file))?;
        if self.queued.is_some() {
            let text = sources.get(ids[0]).text.to_string();
            return self.statements(&text, 1);
        }
        self.apply(&mut sources, &ids)
    }
}

/// Whether a word starts a session command rather than a statement.
pub fn is_command(word: &str) -> bool {
    word == "quit" || COMMANDS.iter().any(|(command, _)| *command == word)
}

/// How many statements text holds, roughly: its non-blank, non-comment lines.
fn statement_count(text: &str) -> usize {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .count()
}

/// The console prints what was done after it is done; nothing while it happens.
struct Quiet;

impl Progress for Quiet {
    fn step(&mut self, _: usize, _: usize, _: &Op) {}
    fn finish(&mut self) {}
}

/// Reads entries from standard input (not a terminal): no prompt, no colour, each
/// applied as it comes; exits 1 if any failed.
pub fn piped(settings: Settings) -> std::process::ExitCode {
    use std::io::BufRead;
    let mut console = Console::new(settings, "<stdin>");
    let mut failed = false;
    let mut entry = String::new();
    let mut first_line = 1;
    for (index, line) in std::io::stdin().lock().lines().enumerate() {
        let line = match line {
            Ok(line) => line,
            Err(error) => {
                note!(
                    "error: cannot read standard input: {}",
                    crate::io_reason::io_reason(&error)
                );
                failed = true;
                break;
            }
        };
        if entry.is_empty() {
            first_line = index + 1;
        }
        entry.push_str(&line);
        entry.push('\n');
        if crate::syntax::needs_more(&entry) {
            continue;
        }
        match console.run(entry.trim_end(), first_line) {
            Outcome::Exit => break,
            Outcome::Failed => failed = true,
            Outcome::Done => {}
        }
        entry.clear();
    }
    if !entry.trim().is_empty() {
        // The input ended inside a block or a quote: the parser says where.
        if console.run(entry.trim_end(), first_line) == Outcome::Failed {
            failed = true;
        }
    }
    if console.abort() {
        failed = true;
    }
    if failed {
        std::process::ExitCode::from(1)
    } else {
        std::process::ExitCode::SUCCESS
    }
}

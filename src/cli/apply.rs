//! `cnm apply` and `cnm destroy`: a plan applied as one journaled transaction, rolled
//! back on any failure; and the recovery of a transaction that a crash cut short.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use indicatif::{ProgressBar, ProgressStyle};
use miette::{LabeledSpan, MietteDiagnostic};

use super::{colour, load, render_report, terminal_width, Failure, Settings};
use crate::backend::memory::MemoryBackend;
use crate::backend::netlink::NetlinkBackend;
use crate::backend::Backend;
use crate::check::{Action, Causes};
use crate::exec::{self, Progress, Stop, Undone};
use crate::journal::{Journal, JournalError};
use crate::model::Model;
use crate::plan::{self, Op, Plan};
use crate::syntax::{Sources, Span};

/// Set by SIGINT and SIGTERM; the executor stops and rolls back at the next step.
static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn request_stop(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

fn catch_stop_signals() {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
    let action = SigAction::new(
        SigHandler::Handler(request_stop),
        SaFlags::empty(),
        SigSet::empty(),
    );
    for signal in [Signal::SIGINT, Signal::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        let _ = unsafe { sigaction(signal, &action) };
    }
}

/// The real kernel, or a message that says why not and how to fix it.
fn kernel(settings: &Settings) -> Result<NetlinkBackend, Failure> {
    NetlinkBackend::new(settings.netns_dir.clone(), settings.etc_dir.clone()).map_err(|e| {
        Failure::Message(match e.errno {
            Some(libc::EPERM) | Some(libc::EACCES) => format!(
                "cnm needs root to change the kernel (CAP_NET_ADMIN and CAP_SYS_ADMIN): {e}; \
                 run it with sudo, or try it without root with --isolated"
            ),
            _ => format!("cannot reach the kernel: {e}"),
        })
    })
}

fn open_journal(settings: &Settings) -> Result<Journal, Failure> {
    let waiting = |holder: &str| {
        eprintln!(
            "cnm: waiting up to {} for the lock on {}, held by {holder}",
            humantime::format_duration(settings.lock_timeout),
            settings.state_dir.display()
        )
    };
    Ok(Journal::open_waiting(
        &settings.state_dir,
        settings.lock_timeout,
        &settings.command_line,
        waiting,
    )?)
}

/// Finishes a transaction that a crash left open, or whose rollback the kernel refused
/// in part, and says so. If the kernel still refuses, the transaction stays open and
/// this fails with what is left to undo.
fn recover(journal: &mut Journal, backend: &mut dyn Backend, etc_dir: &Path) -> Result<(), Failure> {
    let Some(open) = journal.open_transaction()? else {
        return Ok(());
    };
    let undone = match &open.pending {
        Some(pending) => exec::undo(std::iter::once(pending.as_slice()), backend),
        None => exec::recover(&open.plan_steps(), open.done, backend),
    };
    if !undone.is_complete() {
        journal.rollback_incomplete(
            open.tx,
            "recovery: the kernel refused undo operations",
            undone.error_lines(etc_dir),
            undone.pending(),
        )?;
        return Err(Failure::Message(incomplete_rollback(open.tx, &undone, etc_dir)));
    }
    journal.recovered(open.tx, undone.steps, Vec::new())?;
    match open.pending {
        Some(pending) => eprintln!(
            "cnm: transaction {} (`{}`): the {} the kernel had refused went through; it is rolled back",
            open.tx,
            open.command,
            plural(pending.len(), "undo operation"),
        ),
        None => eprintln!(
            "cnm: transaction {} (`{}`) was cut short after {} of {} steps; rolled it back ({} undone)",
            open.tx,
            open.command,
            open.done,
            open.steps.len(),
            plural(undone.steps, "step"),
        ),
    }
    Ok(())
}

/// What a rollback that the kernel refused in part leaves, and what happens next.
fn incomplete_rollback(tx: u64, undone: &Undone, etc_dir: &Path) -> String {
    let mut text = format!(
        "transaction {tx} is not fully rolled back: the kernel refused {}:",
        plural(undone.refused.len(), "undo operation")
    );
    for line in undone.error_lines(etc_dir) {
        text.push_str(&format!("\n    {line}"));
    }
    text.push_str(&format!(
        "\n  until they run, the kernel differs from state.json (which holds the state before \
         transaction {tx}) in what these operations name; the transaction stays open, and the \
         next cnm command that changes the kernel runs them again: remove what blocks them first"
    ));
    text
}

fn plural(n: usize, word: &str) -> String {
    format!("{n} {word}{}", if n == 1 { "" } else { "s" })
}

/// The committed state, for commands that only read it. A transaction left open by a
/// crash is rolled back first when this process may (it gets the lock and the kernel);
/// otherwise the state read is the one before that transaction, which is what it left.
pub fn committed_state(settings: &Settings) -> Result<Model, Failure> {
    let open = crate::journal::read_records(&settings.state_dir)
        .ok()
        .and_then(|records| crate::journal::open_transaction(&records));
    if let Some(open) = open {
        let journal = Journal::open(
            &settings.state_dir,
            std::time::Duration::ZERO,
            &settings.command_line,
        );
        match (
            journal,
            NetlinkBackend::new(settings.netns_dir.clone(), settings.etc_dir.clone()),
        ) {
            (Ok(mut journal), Ok(mut backend)) => {
                if let Err(Failure::Message(message)) = recover(&mut journal, &mut backend, &settings.etc_dir)
                {
                    eprintln!("cnm: warning: {message}");
                }
            }
            (Err(JournalError::Locked { .. }), _) => {}
            _ => eprintln!(
                "cnm: warning: transaction {} was cut short and is not rolled back yet; \
                 run any cnm command as root (or with the same --isolated session) to roll it back",
                open.tx
            ),
        }
    }
    Ok(crate::state::load(&settings.state_dir)?)
}

pub fn apply(settings: &Settings, files: &[PathBuf], dry_run: bool) -> Result<ExitCode, Failure> {
    let (mut sources, ids) = load(files)?;
    let sources_names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    if dry_run {
        let committed = committed_state(settings)?;
        let (checked, plan) = match crate::plan_scripts(&mut sources, &ids, &committed) {
            Ok(planned) => planned,
            Err(diagnostics) => return Err(Failure::Script(sources, diagnostics)),
        };
        warn_skipped(&checked.actions, &sources);
        let mut kernel = simulated_kernel(&committed)?;
        return match run(&plan, &mut kernel, &settings.etc_dir, &mut |_| Ok(())) {
            Ok(()) => {
                print_done(&plan, "Dry run: simulated");
                Ok(ExitCode::SUCCESS)
            }
            Err((stop, undone)) => Err(Failure::Report(failure_report(
                &sources,
                &plan,
                None,
                &stop,
                &undone,
                &settings.etc_dir,
            ))),
        };
    }
    let mut journal = open_journal(settings)?;
    let mut backend = kernel(settings)?;
    recover(&mut journal, &mut backend, &settings.etc_dir)?;
    let committed = journal.state()?;
    let (checked, plan) = match crate::plan_scripts(&mut sources, &ids, &committed) {
        Ok(planned) => planned,
        Err(diagnostics) => return Err(Failure::Script(sources, diagnostics)),
    };
    if let Some(report) = dead_sandboxes(
        &committed,
        &plan,
        &mut |n| backend.netns_exists(n),
        &sources,
        settings,
    ) {
        return Err(Failure::Report(report));
    }
    warn_skipped(&checked.actions, &sources);
    if plan.is_empty() {
        println!("{}", plan::render::NO_CHANGES);
        return Ok(ExitCode::SUCCESS);
    }
    transact(
        &mut journal,
        &mut backend,
        &plan,
        &checked.model,
        &sources_names,
        &sources,
        settings,
    )
}

/// Says, once per statement kind, which statements `cnm apply` checked but does not
/// carry out yet, and where they are.
fn warn_skipped(actions: &[Action], sources: &Sources) {
    const SHOWN: usize = 5;
    let kinds = [
        (
            "publish",
            "recorded in state.json, but no host port is forwarded yet (cnm makes no DNAT rule)",
        ),
        (
            "exec",
            "not run by `cnm apply`; run the command with `cnm exec SANDBOX -- COMMAND`",
        ),
        (
            "expect",
            "not checked: no cnm command checks expectations yet (`cnm test` will)",
        ),
        (
            "serve",
            "not started: no cnm command runs responders yet (`cnm test` will)",
        ),
    ];
    for (keyword, what) in kinds {
        let mut places: Vec<String> = Vec::new();
        for action in actions.iter().filter(|a| a.keyword() == keyword) {
            let (file, at) = sources.position(action.span());
            let place = format!("{file}:{}", at.line);
            // A statement in a loop is one place.
            if !places.contains(&place) {
                places.push(place);
            }
        }
        if places.is_empty() {
            continue;
        }
        let count = places.len();
        let mut listed = places[..count.min(SHOWN)].join(", ");
        if count > SHOWN {
            listed.push_str(&format!(" and {} more", count - SHOWN));
        }
        eprintln!(
            "cnm: warning: {} ({listed}): {what}",
            plural(count, &format!("`{keyword}` statement"))
        );
    }
}

/// Applies `plan` as one journaled transaction that ends in `desired`.
fn transact(
    journal: &mut Journal,
    backend: &mut dyn Backend,
    plan: &Plan,
    desired: &Model,
    source_names: &[String],
    sources: &Sources,
    settings: &Settings,
) -> Result<ExitCode, Failure> {
    let tx = journal.begin(&settings.command_line, source_names, plan)?;
    catch_stop_signals();
    let outcome = run(plan, backend, &settings.etc_dir, &mut |index| {
        journal.step_done(tx, index).map_err(|e| e.to_string())
    });
    match outcome {
        Ok(()) => {
            journal.commit(tx, desired)?;
            print_done(plan, "Applied");
            Ok(ExitCode::SUCCESS)
        }
        Err((stop, undone)) => {
            let why = match &stop {
                Stop::Failed { index, error } => format!(
                    "step {} failed: {}",
                    index + 1,
                    exec::describe(&plan.steps[*index].op, error)
                ),
                Stop::Interrupted { index } => format!("interrupted before step {}", index + 1),
                Stop::Journal { error, .. } => error.clone(),
            };
            if undone.is_complete() {
                journal.rolled_back(tx, &why, undone.steps, Vec::new())?;
            } else {
                journal.rollback_incomplete(
                    tx,
                    &why,
                    undone.error_lines(&settings.etc_dir),
                    undone.pending(),
                )?;
            }
            Err(Failure::Report(failure_report(
                sources,
                plan,
                Some(tx),
                &stop,
                &undone,
                &settings.etc_dir,
            )))
        }
    }
}

fn print_done(plan: &Plan, verb: &str) {
    let mut out = anstream::stdout();
    let _ = writeln!(
        out,
        "{verb} {}. Objects: {} added, {} changed, {} removed.",
        plural(plan.steps.len(), "kernel operation"),
        plan.count(plan::ChangeAction::Add),
        plan.count(plan::ChangeAction::Change),
        plan.count(plan::ChangeAction::Remove),
    );
}

fn run(
    plan: &Plan,
    backend: &mut dyn Backend,
    etc_dir: &Path,
    done: &mut dyn FnMut(usize) -> Result<(), String>,
) -> Result<(), (Stop, Undone)> {
    let mut progress: Box<dyn Progress> = if std::io::stderr().is_terminal() {
        Box::new(Bar::new(plan.steps.len(), etc_dir))
    } else {
        Box::new(Lines(etc_dir))
    };
    exec::apply(plan, backend, progress.as_mut(), &STOP, done)
}

/// What an apply that failed did, drawn by miette: the statement, the operation, the
/// kernel's refusal in words, and what was undone.
/// `tx` is the journaled transaction; `None` for a dry run.
fn failure_report(
    sources: &Sources,
    plan: &Plan,
    tx: Option<u64>,
    stop: &Stop,
    undone: &Undone,
    etc_dir: &Path,
) -> String {
    let (index, headline) = match stop {
        Stop::Failed { index, error } => (
            *index,
            format!(
                "apply failed at step {} of {}: {}",
                index + 1,
                plan.steps.len(),
                exec::describe(&plan.steps[*index].op, error)
            ),
        ),
        Stop::Interrupted { index } => (
            *index,
            format!(
                "apply interrupted before step {} of {}",
                index + 1,
                plan.steps.len()
            ),
        ),
        Stop::Journal { index, error } => (*index, format!("apply stopped at step {}: {error}", index + 1)),
    };
    let help = match tx {
        _ if undone.is_complete() => format!(
            "rolled back: {} undone, last first; the kernel and state.json are as they were",
            plural(undone.steps, "step")
        ),
        Some(tx) => incomplete_rollback(tx, undone, etc_dir),
        None => format!(
            "the simulated rollback was refused: {}",
            undone.error_lines(etc_dir).join("; ")
        ),
    };
    let step = &plan.steps[index.min(plan.steps.len() - 1)];
    let diagnostic = MietteDiagnostic::new(headline)
        .with_code("cnm::apply")
        .with_help(help);
    render_at(
        diagnostic,
        sources,
        step.cause,
        format!("operation: {}", step.op.command(etc_dir)),
    )
}

/// A diagnostic drawn under the statement it is about, labelled; without a statement
/// (`destroy`), the label joins the message.
fn render_at(mut diagnostic: MietteDiagnostic, sources: &Sources, at: Option<Span>, label: String) -> String {
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

/// A sandbox whose namespace vanished outside cnm refuses any statement that would put
/// something inside it; `netns_exists` asks the kernel whether a namespace is there.
pub fn dead_sandboxes(
    committed: &Model,
    plan: &Plan,
    netns_exists: &mut dyn FnMut(&str) -> bool,
    sources: &Sources,
    settings: &Settings,
) -> Option<String> {
    let created: Vec<&str> = plan
        .steps
        .iter()
        .filter_map(|s| match &s.op {
            Op::AddNetns { netns } => Some(netns.as_str()),
            _ => None,
        })
        .collect();
    for step in &plan.steps {
        let inside = match &step.op {
            Op::AddVeth { netns, .. }
            | Op::AddMacvlan { netns, .. }
            | Op::AddRoute { netns, .. }
            | Op::WriteFile { netns, .. } => Some(netns.as_str()),
            Op::AddAddress { netns, .. } | Op::LinkUp { netns, .. } => netns.as_deref(),
            _ => None,
        };
        let Some(netns) = inside else { continue };
        let was_running = committed
            .sandboxes
            .get(netns)
            .is_some_and(|s| s.is_running() && s.netns().is_some());
        if was_running && !created.contains(&netns) && !netns_exists(netns) {
            let message = format!(
                "sandbox {netns} is dead: its namespace {} vanished outside cnm",
                settings.netns_dir.join(netns).display()
            );
            let diagnostic = MietteDiagnostic::new(message)
                .with_code("cnm::dead-sandbox")
                .with_help(format!(
                    "`stop {netns}` then `start {netns}` recreates it; `remove sandbox {netns}` forgets it"
                ));
            let label = "needs the sandbox's namespace".to_string();
            return Some(render_at(diagnostic, sources, step.cause, label));
        }
    }
    None
}

/// An in-memory kernel holding what the committed state stands for.
fn simulated_kernel(committed: &Model) -> Result<MemoryBackend, Failure> {
    let mut kernel = MemoryBackend::new();
    let build = plan::between(&Model::empty(), committed, &Causes::new());
    let never = AtomicBool::new(false);
    exec::apply(&build, &mut kernel, &mut Silent, &never, &mut |_| Ok(())).map_err(|_| {
        Failure::Message("the committed state does not describe a kernel cnm could build".into())
    })?;
    Ok(kernel)
}

pub fn destroy(settings: &Settings) -> Result<ExitCode, Failure> {
    let mut journal = open_journal(settings)?;
    let mut backend = kernel(settings)?;
    recover(&mut journal, &mut backend, &settings.etc_dir)?;
    let committed = journal.state()?;
    let plan = plan::between(&committed, &Model::empty(), &Causes::new());
    if plan.is_empty() {
        println!("Nothing to destroy: the committed state holds no networks, sandboxes or endpoints.");
        return Ok(ExitCode::SUCCESS);
    }
    let sources = Sources::default();
    transact(
        &mut journal,
        &mut backend,
        &plan,
        &Model::empty(),
        &[],
        &sources,
        settings,
    )
}

/// A progress bar, on a terminal; files named under the `/etc/netns` directory.
struct Bar<'a>(ProgressBar, &'a Path);

impl<'a> Bar<'a> {
    fn new(total: usize, etc_dir: &'a Path) -> Bar<'a> {
        let bar = ProgressBar::new(total as u64);
        bar.set_style(
            ProgressStyle::with_template("{bar:30} {pos}/{len} {wide_msg}").expect("a valid template"),
        );
        Bar(bar, etc_dir)
    }
}

impl Progress for Bar<'_> {
    fn step(&mut self, index: usize, _: usize, op: &Op) {
        self.0.set_position(index as u64);
        self.0.set_message(op.command(self.1).to_string());
    }

    fn finish(&mut self) {
        self.0.finish_and_clear();
    }
}

/// One line per step, for logs; files named under the `/etc/netns` directory.
struct Lines<'a>(&'a Path);

impl Progress for Lines<'_> {
    fn step(&mut self, index: usize, total: usize, op: &Op) {
        let width = total.to_string().len();
        eprintln!("[{:>width$}/{total}] {}", index + 1, op.command(self.0));
    }

    fn finish(&mut self) {}
}

struct Silent;

impl Progress for Silent {
    fn step(&mut self, _: usize, _: usize, _: &Op) {}
    fn finish(&mut self) {}
}

//! `cnm apply`, `cnm destroy` and `cnm undo`: a session's transactions, with progress
//! on standard error, SIGINT and SIGTERM turned into a rollback, and a summary.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use super::{actions, load, Failure, Settings};
use crate::check::Action;
use crate::exec::Progress;
use crate::plan::{self, Op, Plan};
use crate::report::plural;
use crate::session::{Applied, Interrupt, Session};
use crate::syntax::Sources;

/// The session whose transaction SIGINT and SIGTERM stop.
static ON_SIGNAL: OnceLock<Interrupt> = OnceLock::new();

extern "C" fn request_stop(_: libc::c_int) {
    // Only atomic loads and a store: async-signal-safe.
    if let Some(interrupt) = ON_SIGNAL.get() {
        interrupt.trigger();
    }
}

/// Makes SIGINT, SIGTERM and SIGHUP stop `session`'s transactions (which then roll back),
/// rather than the process.
pub fn stop_on_signals(session: &Session) {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
    if ON_SIGNAL.set(session.interrupt()).is_err() {
        return;
    }
    let action = SigAction::new(
        SigHandler::Handler(request_stop),
        SaFlags::empty(),
        SigSet::empty(),
    );
    // A dropped SSH session (SIGHUP) is a stop like Ctrl-C: roll back, never half-apply.
    for signal in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        // SAFETY: the handler only touches atomics, which is async-signal-safe.
        let _ = unsafe { sigaction(signal, &action) };
    }
}

pub fn apply(settings: &Settings, files: &[PathBuf], dry_run: bool) -> Result<ExitCode, Failure> {
    let (mut sources, ids) = load(files)?;
    let mut session = settings.session();
    stop_on_signals(&session);
    let mut progress = progress(&settings.etc_dir);
    if dry_run {
        let applied = session.dry_run(&mut sources, &ids, progress.as_mut())?;
        warn_unpublished(&applied.model, &applied.actions, &sources);
        print_done(&applied.plan, "Dry run: simulated");
        return Ok(ExitCode::SUCCESS);
    }
    let mut vet =
        |checked: &crate::check::Checked, sources: &Sources| actions::refuse_serve(&checked.actions, sources);
    let applied = session.apply_vetted(&mut sources, &ids, progress.as_mut(), &mut vet)?;
    warn_unpublished(&applied.model, &applied.actions, &sources);
    report_applied(&applied, plan::render::NO_CHANGES);
    let outcomes = actions::run(
        settings,
        &applied.model,
        &applied.actions,
        &sources,
        &mut Vec::new(),
    );
    let failed = actions::print(&outcomes);
    if failed > 0 {
        note!(
            "error: {} failed; the topology stays as applied",
            plural(failed, "statement")
        );
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

pub fn destroy(settings: &Settings) -> Result<ExitCode, Failure> {
    let mut session = settings.session();
    stop_on_signals(&session);
    let applied = session.destroy(progress(&settings.etc_dir).as_mut())?;
    report_applied(
        &applied,
        "Nothing to destroy: the committed state holds no networks, sandboxes or endpoints.",
    );
    Ok(ExitCode::SUCCESS)
}

pub fn restore(settings: &Settings) -> Result<ExitCode, Failure> {
    let mut session = settings.session();
    stop_on_signals(&session);
    match session.restore(progress(&settings.etc_dir).as_mut())? {
        None => say!("Nothing to restore: the kernel holds everything the committed state records."),
        Some(applied) => say!(
            "Restored: {} made again.",
            plural(applied.plan.steps.len(), "kernel operation")
        ),
    }
    Ok(ExitCode::SUCCESS)
}

pub fn gc(settings: &Settings, dry_run: bool) -> Result<ExitCode, Failure> {
    let results = settings.session().gc(dry_run)?;
    if results.is_empty() {
        say!("Nothing to collect: the kernel holds nothing of cnm's that the committed state does not know.");
        return Ok(ExitCode::SUCCESS);
    }
    let mut refused = 0;
    for (op, error) in &results {
        let command = op.command(&settings.etc_dir);
        match (dry_run, error) {
            (true, _) => say!("would remove: {command}"),
            (false, None) => say!("removed: {command}"),
            (false, Some(error)) => {
                refused += 1;
                note!("error: {command}: {}", crate::exec::describe(op, error));
            }
        }
    }
    Ok(if refused > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

pub fn undo(settings: &Settings) -> Result<ExitCode, Failure> {
    let mut session = settings.session();
    stop_on_signals(&session);
    match session.undo(progress(&settings.etc_dir).as_mut())? {
        None => say!("Nothing to undo: no committed transaction is left to take back."),
        Some((undone, applied)) => {
            say!("Undid transaction {undone}.");
            report_applied(&applied, "It had changed nothing in the kernel.");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The summary of a transaction, or `nothing` when it had nothing to do.
pub fn report_applied(applied: &Applied, nothing: &str) {
    if applied.plan.is_empty() {
        say!("{nothing}");
    } else {
        print_done(&applied.plan, "Applied");
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

/// Says which `publish` statements lead nowhere: their sandbox runs with no address on
/// a bridge network that is not `internal` (a stopped sandbox's ports come back when
/// it starts).
pub fn warn_unpublished(model: &crate::model::Model, actions: &[Action], sources: &Sources) {
    if !actions.iter().any(|a| matches!(a, Action::Publish { .. })) {
        return;
    }
    let unpublished = plan::firewall::unpublished(model);
    let mut places: Vec<String> = Vec::new();
    for action in actions {
        let Action::Publish { sandbox, span, .. } = action else {
            continue;
        };
        if !unpublished.contains(&sandbox.as_str()) {
            continue;
        }
        let (file, at) = sources.position(*span);
        let place = format!("{file}:{}", at.line);
        // A statement in a loop is said once.
        if !places.contains(&place) {
            note!(
                "cnm: warning: {place}: sandbox {sandbox} has no address on a bridge network that is \
                 not internal, so the ports it publishes lead nowhere; connect it to one"
            );
            places.push(place);
        }
    }
}

/// No progress at all: for what reports the whole outcome itself.
pub fn quiet() -> impl Progress {
    struct Quiet;
    impl Progress for Quiet {
        fn step(&mut self, _: usize, _: usize, _: &Op) {}
        fn finish(&mut self) {}
    }
    Quiet
}

/// A progress bar on a terminal, else a line now and then.
pub fn progress(etc_dir: &Path) -> Box<dyn Progress + '_> {
    if std::io::stderr().is_terminal() {
        Box::new(Bar::new(etc_dir))
    } else {
        Box::new(Lines { etc_dir, last: None })
    }
}

/// A progress bar, on a terminal; files named under the `/etc/netns` directory.
struct Bar<'a>(ProgressBar, &'a Path);

impl<'a> Bar<'a> {
    fn new(etc_dir: &'a Path) -> Bar<'a> {
        let bar = ProgressBar::hidden();
        bar.set_style(
            ProgressStyle::with_template("{bar:30} {pos}/{len} {wide_msg}").expect("a valid template"),
        );
        Bar(bar, etc_dir)
    }
}

impl Progress for Bar<'_> {
    fn step(&mut self, index: usize, total: usize, op: &Op) {
        if index == 0 {
            self.0.set_draw_target(indicatif::ProgressDrawTarget::stderr());
            self.0.set_length(total as u64);
        }
        self.0.set_position(index as u64);
        self.0.set_message(op.command(self.1).to_string());
    }

    fn finish(&mut self) {
        self.0.finish_and_clear();
    }
}

/// For logs: the first and the last step, and the step under way each second between,
/// a line each; files named under the `/etc/netns` directory. A line per step cost a
/// CI log thousands of lines, and an apply up to a fifth of its time.
struct Lines<'a> {
    etc_dir: &'a Path,
    last: Option<Instant>,
}

const LINE_EVERY: Duration = Duration::from_secs(1);

impl Progress for Lines<'_> {
    fn step(&mut self, index: usize, total: usize, op: &Op) {
        let due = self.last.is_none_or(|last| last.elapsed() >= LINE_EVERY);
        if due || index + 1 == total {
            let width = total.to_string().len();
            note!("[{:>width$}/{total}] {}", index + 1, op.command(self.etc_dir));
            self.last = Some(Instant::now());
        }
    }

    fn finish(&mut self) {}
}

//! A session: the one way cnm changes the kernel. It owns the state directory (the
//! journal, and its lock, taken for one transaction at a time), the kernel backend, and
//! the variables that persist from one piece of source to the next; it checks, plans
//! and applies a piece of source against the committed state, destroys, undoes, and
//! finishes what a crash left open. `cnm apply`, `plan`, `destroy`, `undo`, the REPL and
//! piped scripts all go through it; none of them re-implements recovery or rollback.

mod gc;
mod host_subnets;
mod restore;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use miette::MietteDiagnostic;
use rustc_hash::FxHashSet;

use crate::backend::memory::MemoryBackend;
use crate::backend::netlink::{self, NetlinkBackend};
use crate::backend::Backend;
use crate::check::{self, Action, Causes, Checked, Variables};
use crate::error::Diagnostic;
use crate::exec::{self, Progress, Stop, Undone};
use crate::journal::{self, Journal, JournalError};
use crate::model::Model;
use crate::plan::{self, Op, Plan};
use crate::report::{colour, plural, render_at, render_diagnostics, terminal_width};
use crate::syntax::{FileId, Sources};

/// Where a session acts.
#[derive(Debug, Clone)]
pub struct Config {
    pub state_dir: PathBuf,
    pub netns_dir: PathBuf,
    pub etc_dir: PathBuf,
    pub lock_timeout: Duration,
    /// What the journal and the lock record as the command (`cnm apply seed.cnm`).
    pub command_line: String,
}

/// Why something a session was asked to do did not happen.
#[derive(Debug)]
pub enum Error {
    /// Errors in the source, already loaded in `sources`.
    Script(Sources, Vec<Diagnostic>),
    /// A drawn report: an apply that failed and was rolled back, a dead sandbox.
    Report(String),
    /// Anything else, in one line.
    Message(String),
}

impl<E: std::error::Error> From<E> for Error {
    fn from(error: E) -> Error {
        Error::Message(error.to_string())
    }
}

impl Error {
    /// The error as it is shown on standard error.
    pub fn render(&self) -> String {
        match self {
            Error::Script(sources, diagnostics) => {
                let mut text = render_diagnostics(sources, diagnostics, colour(), terminal_width());
                text.push_str(&format!(
                    "error: {} found; nothing was planned or applied\n",
                    plural(diagnostics.len(), "error")
                ));
                text
            }
            Error::Report(text) => text.clone(),
            Error::Message(message) => format!("error: {message}\n"),
        }
    }
}

/// A request to stop a transaction: the executor stops before its next step and rolls
/// back. Cheap to clone; every clone is the same token.
#[derive(Debug, Clone, Default)]
pub struct Interrupt(Arc<AtomicBool>);

impl Interrupt {
    /// Asks the running transaction (or the next one) to stop. Async-signal-safe.
    pub fn trigger(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn reset(&self) {
        self.0.store(false, Ordering::SeqCst);
    }

    pub fn is_triggered(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// What one transaction did.
#[derive(Debug)]
pub struct Applied {
    pub plan: Plan,
    /// The committed state afterwards.
    pub model: Model,
    /// Its journal number; `None` when there was nothing to do (or a dry run).
    pub tx: Option<u64>,
    /// The statements to run once applied (`exec`, `expect`, `serve`, `publish`).
    pub actions: Vec<Action>,
}

pub struct Session {
    config: Config,
    /// The kernel, opened when first needed (reading needs no privilege).
    backend: Option<Box<dyn Backend>>,
    variables: Variables,
    interrupt: Interrupt,
    /// Where the session says what it does on its own: recovery, waiting for the lock.
    notice: Box<dyn FnMut(&str)>,
    /// Whether new networks are checked against the host's own addresses and routes
    /// (not on a simulated kernel, whose host is not this one).
    reads_host: bool,
}

impl Session {
    /// A session on the real kernel; it is reached only when something must change.
    pub fn new(config: Config) -> Session {
        Session {
            config,
            backend: None,
            variables: Variables::new(),
            interrupt: Interrupt::default(),
            notice: Box::new(|text| note!("cnm: {text}")),
            reads_host: true,
        }
    }

    /// A session whose kernel is `backend` (the in-memory one, in tests).
    pub fn with_backend(config: Config, backend: Box<dyn Backend>) -> Session {
        Session {
            backend: Some(backend),
            reads_host: false,
            ..Session::new(config)
        }
    }

    /// Sends the session's notices (recovery, lock waits) to `notice` instead of
    /// standard error.
    pub fn set_notice(&mut self, notice: impl FnMut(&str) + 'static) {
        self.notice = Box::new(notice);
    }

    /// What the journal records as the command of the next transactions (a console
    /// records each entry).
    pub fn set_command_line(&mut self, command_line: impl Into<String>) {
        self.config.command_line = command_line.into();
    }

    /// The token that stops this session's transactions.
    pub fn interrupt(&self) -> Interrupt {
        self.interrupt.clone()
    }

    /// The variables set by `let` so far.
    pub fn variables(&self) -> &Variables {
        &self.variables
    }

    /// The kernel, or a message that says why not and how to fix it.
    fn kernel(&mut self) -> Result<&mut dyn Backend, Error> {
        if self.backend.is_none() {
            let backend = NetlinkBackend::new(self.config.netns_dir.clone(), self.config.etc_dir.clone())
                .map_err(|e| {
                    Error::Message(match e.errno {
                        Some(libc::EPERM) | Some(libc::EACCES) => needs_root(&e.to_string()),
                        _ => format!("cannot reach the kernel: {e}"),
                    })
                })?;
            self.backend = Some(Box::new(backend));
        }
        Ok(self.backend.as_deref_mut().expect("opened above"))
    }

    /// Refuses at once, before anything is written, a change of the kernel that this
    /// process has not the capabilities for. Asks the process's own capability sets,
    /// not the kernel: nothing is touched to find out.
    fn may_change_kernel(&self) -> Result<(), Error> {
        if self.backend.is_some() {
            return Ok(());
        }
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let Some(effective) = status
            .lines()
            .find_map(|l| l.strip_prefix("CapEff:"))
            .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        else {
            return Ok(());
        };
        let missing: Vec<&str> = [(12, "CAP_NET_ADMIN"), (21, "CAP_SYS_ADMIN")]
            .into_iter()
            .filter(|(bit, _)| effective & (1 << bit) == 0)
            .map(|(_, name)| name)
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        Err(Error::Message(needs_root(&format!(
            "this process lacks {}",
            missing.join(" and ")
        ))))
    }

    /// Says what opening the journal set right (a line cut short, a commit finished).
    fn say(&mut self, journal: &mut Journal) {
        for notice in journal.take_notices() {
            (self.notice)(&notice);
        }
    }

    /// The state directory, locked until the returned journal is dropped; says at once
    /// whom it waits for, if it must.
    fn lock(&mut self) -> Result<Journal, Error> {
        let Config {
            state_dir,
            lock_timeout,
            command_line,
            ..
        } = &self.config;
        let notice = &mut self.notice;
        let waiting = |holder: &str| {
            notice(&format!(
                "waiting up to {} for the lock on {}, held by {holder}",
                humantime::format_duration(*lock_timeout),
                state_dir.display()
            ))
        };
        let mut journal = Journal::open_waiting(state_dir, *lock_timeout, command_line, waiting)?;
        self.say(&mut journal);
        Ok(journal)
    }

    /// Finishes a transaction that a crash left open, or whose rollback the kernel
    /// refused in part, and says so. If the kernel still refuses, the transaction stays
    /// open and this fails with what is left to undo.
    fn recover(&mut self, journal: &mut Journal) -> Result<(), Error> {
        let Some(open) = journal.open_transaction()? else {
            return Ok(());
        };
        let etc_dir = self.config.etc_dir.clone();
        let backend = self.kernel()?;
        let undone = match &open.pending {
            Some(pending) => exec::undo(std::iter::once(pending.as_slice()), backend),
            None => exec::recover(&open.plan_steps(), open.done, backend),
        };
        if !undone.is_complete() {
            journal.rollback_incomplete(
                open.tx,
                "recovery: the kernel refused undo operations",
                undone.error_lines(&etc_dir),
                undone.pending(),
            )?;
            return Err(Error::Message(incomplete_rollback(open.tx, &undone, &etc_dir)));
        }
        journal.recovered(open.tx, undone.steps, Vec::new())?;
        let said = match open.pending {
            Some(pending) => format!(
                "transaction {} (`{}`): the {} the kernel had refused went through; it is rolled back",
                open.tx,
                open.command,
                plural(pending.len(), "undo operation"),
            ),
            None => format!(
                "transaction {} (`{}`) was cut short after {} of {} steps; rolled it back ({} undone)",
                open.tx,
                open.command,
                open.done,
                open.steps.len(),
                plural(undone.steps, "step"),
            ),
        };
        (self.notice)(&said);
        Ok(())
    }

    /// The committed state, for what only reads it. What a crash left unsettled — a
    /// journal line cut short, a commit whose state file was not put in place, a
    /// transaction left open — is set right first when this process may (it gets the
    /// lock, and for an open transaction the kernel). Otherwise nothing is written: the
    /// state read is the one a commit vouches for (`state.json.next`, while another cnm
    /// puts it in place), else `state.json`, and a notice says what is left.
    pub fn committed(&mut self) -> Result<Model, Error> {
        let dir = self.config.state_dir.clone();
        let look = match journal::look(&dir) {
            Ok(look) => look,
            Err(error @ JournalError::Corrupt { .. }) => {
                (self.notice)(&format!("warning: {error}"));
                journal::Look::default()
            }
            Err(error) => return Err(error.into()),
        };
        if look.unsettled() {
            match Journal::open(&dir, Duration::ZERO, &self.config.command_line) {
                Ok(mut journal) => {
                    self.say(&mut journal);
                    let finished = match journal.open_transaction() {
                        Ok(None) => Ok(()),
                        Ok(Some(open)) => match self.kernel() {
                            Ok(_) => self.recover(&mut journal),
                            Err(_) => Err(Error::Message(format!(
                                "transaction {} was cut short and is not rolled back yet; run any cnm \
                                 command as root (or with the same --isolated session) to roll it back",
                                open.tx
                            ))),
                        },
                        Err(error) => Err(error.into()),
                    };
                    if let Err(error) = finished {
                        (self.notice)(&format!(
                            "warning: {}",
                            error.render().trim_start_matches("error: ").trim_end()
                        ));
                    }
                }
                Err(JournalError::Locked { .. }) => {
                    if let Some(model) = journal::committed_next(&dir) {
                        return Ok(model);
                    }
                }
                Err(error) => (self.notice)(&format!("warning: {error}")),
            }
        }
        Ok(crate::state::load(&dir)?)
    }

    /// Rebuilds `state.json` from the journal (`cnm recover --from-journal`): the last
    /// state a transaction committed; lines of the journal that cannot be read are
    /// dropped, the file set aside first. A transaction the kept lines leave open is
    /// then rolled back, as after a crash. Returns what was done, in words.
    pub fn rebuild_from_journal(&mut self) -> Result<String, Error> {
        let mut journal = self.lock()?;
        let rebuilt = journal.rebuild_state()?;
        let mut said = format!(
            "Rebuilt {} from {}.\n",
            self.config.state_dir.join(crate::state::STATE_FILE).display(),
            rebuilt.from
        );
        if let Some(kept) = &rebuilt.kept {
            said.push_str(&format!(
                "Dropped {} of the journal that could not be read (line {}); the journal as it was is kept in {}.\n",
                plural(rebuilt.dropped.len(), "line"),
                rebuilt
                    .dropped
                    .iter()
                    .map(usize::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
                kept.display()
            ));
        }
        if let Some(replaced) = &rebuilt.replaced {
            said.push_str(&format!(
                "The state file it replaced is kept in {}.\n",
                replaced.display()
            ));
        }
        if journal.open_transaction()?.is_some() {
            self.recover(&mut journal)?;
        }
        Ok(said)
    }

    /// Checks already-loaded source against the committed state and the session's
    /// variables.
    pub fn check(&mut self, sources: &mut Sources, files: &[FileId]) -> Result<Checked, Error> {
        let committed = self.committed()?;
        self.check_against(&committed, sources, files)
    }

    fn check_against(
        &self,
        committed: &Model,
        sources: &mut Sources,
        files: &[FileId],
    ) -> Result<Checked, Error> {
        check::check_with(sources, files, committed, &self.variables)
            .map_err(|diagnostics| Error::Script(std::mem::take(sources), diagnostics))
    }

    /// What applying the source would do, or what apply would refuse (a dead sandbox).
    pub fn plan(&mut self, sources: &mut Sources, files: &[FileId]) -> Result<(Checked, Plan), Error> {
        let committed = self.committed()?;
        let mut checked = self.check_against(&committed, sources, files)?;
        self.refuse_host_subnets(&committed, &checked, sources)?;
        self.decide_forwarding(&committed, &mut checked.model)?;
        let plan = plan::plan(&committed, &checked);
        self.refuse_dead_sandboxes(&committed, &plan, sources)?;
        Ok((checked, plan))
    }

    /// Applies the source as one journaled transaction, rolled back on any failure or
    /// interrupt. The session's variables become the source's only if it applies.
    pub fn apply(
        &mut self,
        sources: &mut Sources,
        files: &[FileId],
        progress: &mut dyn Progress,
    ) -> Result<Applied, Error> {
        self.apply_vetted(sources, files, progress, &mut |_, _| Ok(()))
    }

    /// As [`Session::apply`], but `vet` sees the checked source first and may refuse it
    /// (what a front end cannot carry out) before anything is touched.
    pub fn apply_vetted(
        &mut self,
        sources: &mut Sources,
        files: &[FileId],
        progress: &mut dyn Progress,
        vet: &mut dyn FnMut(&Checked, &Sources) -> Result<(), Error>,
    ) -> Result<Applied, Error> {
        // Errors in the source, and a missing privilege, are found before anything is
        // written (the state directory, its lock, the journal).
        let seen = self.committed()?;
        let mut checked = self.check_against(&seen, sources, files)?;
        vet(&checked, sources)?;
        self.may_change_kernel()?;
        let mut journal = self.lock()?;
        self.recover(&mut journal)?;
        let committed = journal.state()?;
        if committed != seen {
            checked = self.check_against(&committed, sources, files)?;
            vet(&checked, sources)?;
        }
        self.refuse_host_subnets(&committed, &checked, sources)?;
        self.decide_forwarding(&committed, &mut checked.model)?;
        let plan = plan::plan(&committed, &checked);
        self.refuse_dead_sandboxes(&committed, &plan, sources)?;
        let names: Vec<String> = files.iter().map(|&f| sources.get(f).name.clone()).collect();
        let tx = self.transact(
            &mut journal,
            &plan,
            &committed,
            &checked.model,
            &names,
            sources,
            None,
            progress,
        )?;
        self.variables = checked.variables;
        Ok(Applied {
            plan,
            tx,
            model: checked.model,
            actions: checked.actions,
        })
    }

    /// Simulates applying the source on an in-memory kernel that holds the committed
    /// state; changes nothing, writes nothing.
    pub fn dry_run(
        &mut self,
        sources: &mut Sources,
        files: &[FileId],
        progress: &mut dyn Progress,
    ) -> Result<Applied, Error> {
        let committed = self.committed()?;
        let mut checked = self.check_against(&committed, sources, files)?;
        self.refuse_host_subnets(&committed, &checked, sources)?;
        self.decide_forwarding(&committed, &mut checked.model)?;
        let plan = plan::plan(&committed, &checked);
        let mut kernel = simulated_kernel(&committed)?;
        let never = AtomicBool::new(false);
        exec::apply(&plan, &mut kernel, progress, &never, &mut |_| Ok(())).map_err(|(stop, undone)| {
            Error::Report(failure_report(
                sources,
                &plan,
                None,
                &stop,
                &undone,
                &self.config.etc_dir,
            ))
        })?;
        Ok(Applied {
            plan,
            tx: None,
            model: checked.model,
            actions: checked.actions,
        })
    }

    /// Removes everything the committed state holds, as one transaction.
    pub fn destroy(&mut self, progress: &mut dyn Progress) -> Result<Applied, Error> {
        self.may_change_kernel()?;
        let mut journal = self.lock()?;
        self.recover(&mut journal)?;
        let committed = journal.state()?;
        let plan = plan::between(&committed, &Model::empty(), &Causes::new());
        let tx = self.transact(
            &mut journal,
            &plan,
            &committed,
            &Model::empty(),
            &[],
            &Sources::default(),
            None,
            progress,
        )?;
        Ok(Applied {
            plan,
            tx,
            model: Model::empty(),
            actions: Vec::new(),
        })
    }

    /// Takes back the last committed transaction that was not taken back yet, as a new
    /// transaction planned from the state recorded before it: twice goes back two.
    /// `None` when there is nothing to undo.
    pub fn undo(&mut self, progress: &mut dyn Progress) -> Result<Option<(u64, Applied)>, Error> {
        self.may_change_kernel()?;
        let mut journal = self.lock()?;
        self.recover(&mut journal)?;
        let Some((undone, mut before)) = journal::undo_target(&self.config.state_dir)? else {
            return Ok(None);
        };
        let committed = journal.state()?;
        self.decide_forwarding(&committed, &mut before)?;
        let plan = plan::between(&committed, &before, &Causes::new());
        let tx = self.transact(
            &mut journal,
            &plan,
            &committed,
            &before,
            &[],
            &Sources::default(),
            Some(undone),
            progress,
        )?;
        Ok(Some((
            undone,
            Applied {
                plan,
                tx,
                model: before,
                actions: Vec::new(),
            },
        )))
    }

    /// Applies `plan` as one journaled transaction that takes `before` to `desired`;
    /// its number, or `None` if there was nothing to do.
    #[allow(clippy::too_many_arguments)]
    fn transact(
        &mut self,
        journal: &mut Journal,
        plan: &Plan,
        before: &Model,
        desired: &Model,
        source_names: &[String],
        sources: &Sources,
        undoes: Option<u64>,
        progress: &mut dyn Progress,
    ) -> Result<Option<u64>, Error> {
        if plan.is_empty() {
            return Ok(None);
        }
        let tx = journal.begin(
            &self.config.command_line,
            source_names,
            plan,
            before,
            desired,
            undoes,
        )?;
        let interrupt = self.interrupt.clone();
        let etc_dir = self.config.etc_dir.clone();
        let outcome = exec::apply(plan, self.kernel()?, progress, &interrupt.0, &mut |index| {
            journal.step_done(tx, index).map_err(|e| e.to_string())
        });
        // A stop asked for during this transaction ends with it.
        interrupt.reset();
        let (stop, undone) = match outcome {
            Ok(()) => match journal.commit(tx, desired) {
                Ok(()) => {
                    self.say(journal);
                    return Ok(Some(tx));
                }
                // Not committed (a full disk, say): the kernel goes back to the state
                // the journal still holds, as for any other failure.
                Err(error) => {
                    let undone = exec::recover(&plan.steps, plan.steps.len(), self.kernel()?);
                    let stop = Stop::Journal {
                        index: plan.steps.len(),
                        error: format!("cannot commit: {error}"),
                    };
                    (stop, undone)
                }
            },
            Err(failure) => failure,
        };
        let why = match &stop {
            Stop::Failed { index, error } => format!(
                "step {} failed: {}",
                index + 1,
                exec::describe(&plan.steps[*index].op, error)
            ),
            Stop::Interrupted { index } => format!("interrupted before step {}", index + 1),
            Stop::Journal { error, .. } => error.clone(),
        };
        let recorded = if undone.is_complete() {
            journal.rolled_back(tx, &why, undone.steps, Vec::new())
        } else {
            journal.rollback_incomplete(tx, &why, undone.error_lines(&etc_dir), undone.pending())
        };
        let mut report = failure_report(sources, plan, Some(tx), &stop, &undone, &etc_dir);
        if let Err(error) = recorded {
            report.push_str(&format!(
                "error: the journal could not record the rollback ({error}); transaction {tx} stays \
                 open there, and the next cnm command rolls it back again\n"
            ));
        }
        Err(Error::Report(report))
    }

    /// Records in `desired` whether cnm has turned the host's `ip_forward` on: it turns
    /// it on, from off, for the first network with a way out, and keeps the record
    /// until no such network is left (then the plan turns it off again). A host that
    /// forwards already is left as it is, and so it stays.
    fn decide_forwarding(&mut self, committed: &Model, desired: &mut Model) -> Result<(), Error> {
        desired.ip_forward_enabled = plan::firewall::needs_forwarding(desired)
            && (committed.ip_forward_enabled || !self.ip_forward()?);
        Ok(())
    }

    /// The host's `net.ipv4.ip_forward`, which anyone may read.
    fn ip_forward(&mut self) -> Result<bool, Error> {
        let read = match self.backend.as_deref_mut() {
            Some(backend) => backend.ip_forward(),
            None => netlink::nft::ip_forward(),
        };
        read.map_err(|e| Error::Message(e.to_string()))
    }

    /// A sandbox whose namespace vanished outside cnm refuses any statement that would
    /// put something inside it.
    fn refuse_dead_sandboxes(
        &mut self,
        committed: &Model,
        plan: &Plan,
        sources: &Sources,
    ) -> Result<(), Error> {
        let running = |netns: &str| {
            committed
                .sandboxes
                .get(netns)
                .is_some_and(|s| s.is_running() && s.netns().is_some())
        };
        if !committed.sandboxes.keys().any(|name| running(name)) {
            return Ok(());
        }
        let created: FxHashSet<&str> = plan
            .steps
            .iter()
            .filter_map(|s| match &s.op {
                Op::AddNetns { netns } => Some(&**netns),
                _ => None,
            })
            .collect();
        for step in &plan.steps {
            let inside = match &step.op {
                Op::AddVeth { netns, .. }
                | Op::AddMacvlan { netns, .. }
                | Op::AddRoute { netns, .. }
                | Op::WriteFile { netns, .. } => Some(&**netns),
                Op::AddAddress { netns, .. } | Op::LinkUp { netns, .. } => netns.as_deref(),
                _ => None,
            };
            let Some(netns) = inside else { continue };
            if running(netns) && !created.contains(netns) && !self.netns_exists(netns) {
                let message = format!(
                    "sandbox {netns} is dead: its namespace {} vanished outside cnm",
                    self.config.netns_dir.join(netns).display()
                );
                let diagnostic = MietteDiagnostic::new(message)
                    .with_code("cnm::dead-sandbox")
                    .with_help(format!(
                    "`stop {netns}` then `start {netns}` recreates it; `remove sandbox {netns}` forgets it"
                ));
                let label = "needs the sandbox's namespace".to_string();
                return Err(Error::Report(render_at(diagnostic, sources, step.cause, label)));
            }
        }
        Ok(())
    }

    /// Whether a namespace is there: asked of the kernel backend when one is open, else
    /// read off the namespace directory (which needs no privilege).
    fn netns_exists(&mut self, netns: &str) -> bool {
        match self.backend.as_deref_mut() {
            Some(backend) => backend.netns_exists(netns),
            None => netlink::netns_exists(&self.config.netns_dir, netns),
        }
    }
}

/// The refusal of a change of the kernel for want of privilege, with `why`.
fn needs_root(why: &str) -> String {
    format!(
        "cnm needs root to change the kernel (CAP_NET_ADMIN and CAP_SYS_ADMIN): {why}; \
         run it with sudo, or try it without root with --isolated"
    )
}

/// What a rollback that the kernel refused in part leaves, and what happens next.
fn incomplete_rollback(tx: u64, undone: &Undone, etc_dir: &std::path::Path) -> String {
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

/// What an apply that failed did, drawn by miette: the statement, the operation, the
/// kernel's refusal in words, and what was undone. `tx` is the journaled transaction;
/// `None` for a dry run.
fn failure_report(
    sources: &Sources,
    plan: &Plan,
    tx: Option<u64>,
    stop: &Stop,
    undone: &Undone,
    etc_dir: &std::path::Path,
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
        Stop::Journal { index, error } if *index >= plan.steps.len() => {
            (*index, format!("apply could not be committed: {error}"))
        }
        Stop::Journal { index, error } => (*index, format!("apply stopped at step {}: {error}", index + 1)),
    };
    let help = match tx {
        _ if undone.is_complete() => format!(
            "rolled back: {} undone in {:.2} s, last first; the kernel and state.json are as they were",
            plural(undone.steps, "step"),
            undone.took.as_secs_f64()
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

/// An in-memory kernel holding what the committed state stands for.
fn simulated_kernel(committed: &Model) -> Result<MemoryBackend, Error> {
    struct Silent;
    impl Progress for Silent {
        fn step(&mut self, _: usize, _: usize, _: &Op) {}
        fn finish(&mut self) {}
    }
    let mut kernel = MemoryBackend::new();
    let build = plan::between(&Model::empty(), committed, &Causes::new());
    let never = AtomicBool::new(false);
    exec::apply(&build, &mut kernel, &mut Silent, &never, &mut |_| Ok(())).map_err(|_| {
        Error::Message("the committed state does not describe a kernel cnm could build".into())
    })?;
    Ok(kernel)
}

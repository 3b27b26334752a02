//! The journal, in the state directory: `state.json` (the committed model), and
//! `journal.jsonl`, an append-only record of every transaction — `begin` with its plan,
//! `step` for each operation done, then `commit`, `rolled-back` or `recovered`. An
//! exclusive lock (`lock`) keeps two cnm processes from interleaving.
//!
//! Crash safety: `begin` reaches the disk before the first kernel operation. A commit
//! writes the new state beside the old (`state.json.next`), appends `commit` with the
//! new state's SHA-256, then renames: the `commit` line decides whether a crash left the
//! new state or the old one, and vouches for that one file only. `step` lines are not
//! synced one by one — a killed process loses nothing the kernel page cache holds, and
//! undoing is idempotent, so a step whose line was lost is undone all the same. A line
//! cut short at the end (a crash or a full disk during a write) is set aside and removed
//! by the next cnm that takes the lock.
//!
//! History without cost: every command reads only the end of `journal.jsonl` (its last
//! line says whether a transaction is open), never the whole of it. Once a transaction
//! ends and the file has grown past a few MiB, it is archived whole as
//! `journal-NNNNNN.jsonl`; `cnm log` and `cnm undo` read the archives newest first, only
//! as far back as they need.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{Read, Seek, Write};
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use nix::fcntl::{Flock, FlockArg};
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::model::Model;
use crate::plan::{EtcFiles, FileText, Op, Plan};
use crate::state::files::{self, MAX_STATE_BYTES};
use crate::state::{self, StateError, STATE_FILE};

pub const JOURNAL_FILE: &str = "journal.jsonl";
const LOCK_FILE: &str = "lock";
pub const NEXT_STATE_FILE: &str = "state.json.next";
/// `journal.jsonl` is archived once a transaction ends with it at least this long.
const ROTATE_BYTES: u64 = 4 << 20;
/// How many archives are kept: the oldest go once there are more. With
/// [`ROTATE_BYTES`], the history on disk stays under about 36 MiB.
const ARCHIVES_KEPT: usize = 8;

/// One line of `journal.jsonl`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Record {
    Begin {
        tx: u64,
        time: String,
        command: String,
        sources: Vec<String>,
        steps: Vec<JournalStep>,
        /// The committed model before the transaction, so that `undo` can plan the way
        /// back. Absent in journals written before cnm kept it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        before: Option<Box<Model>>,
        /// The model the transaction commits, if it commits: what `cnm recover
        /// --from-journal` rebuilds `state.json` from. Absent in older journals.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        after: Option<Box<Model>>,
        /// The transaction this one undoes, if it is an undo.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        undoes: Option<u64>,
    },
    Step {
        tx: u64,
        index: usize,
    },
    Commit {
        tx: u64,
        time: String,
        /// The SHA-256 of `state.json.next` as written: the one file this commit vouches
        /// for. Absent in older journals.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        state_sha256: Option<String>,
    },
    RolledBack {
        tx: u64,
        time: String,
        reason: String,
        undone: usize,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        errors: Vec<String>,
    },
    Recovered {
        tx: u64,
        time: String,
        undone: usize,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        errors: Vec<String>,
    },
    /// Rolling back (or recovering) ran, but the kernel refused some undo operations:
    /// the transaction stays open, and the next command runs `pending` again, in order.
    RollbackIncomplete {
        tx: u64,
        time: String,
        reason: String,
        errors: Vec<String>,
        pending: Vec<Op>,
    },
}

impl Record {
    pub fn tx(&self) -> u64 {
        match self {
            Record::Begin { tx, .. }
            | Record::Step { tx, .. }
            | Record::Commit { tx, .. }
            | Record::RolledBack { tx, .. }
            | Record::Recovered { tx, .. }
            | Record::RollbackIncomplete { tx, .. } => *tx,
        }
    }

    /// Whether this record ends its transaction: after it, none is open.
    pub fn ends(&self) -> bool {
        matches!(
            self,
            Record::Commit { .. } | Record::RolledBack { .. } | Record::Recovered { .. }
        )
    }
}

/// A planned operation as the journal keeps it: enough to undo it after a crash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalStep {
    pub op: Op,
    pub undo: Vec<Op>,
    /// The contents of the files this step writes are left out (written as ""): the
    /// op's are the transaction's `after` model's files, its undo's the `before`
    /// model's, and are rendered from them again when the step is read back. A hosts
    /// file lists every peer, so a transaction's files hold N² lines where its models
    /// hold N.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rendered: bool,
}

impl JournalStep {
    /// The step as the journal keeps it, its files' contents left out where they are
    /// exactly what rendering the models gives back.
    fn recorded(op: &Op, undo: &[Op], before: &EtcFiles, after: &EtcFiles) -> JournalStep {
        let renders = |op: &Op, files: &EtcFiles| match op {
            Op::WriteFile { netns, file, content } => files.get(netns, *file).as_ref() == Some(content),
            _ => true,
        };
        let writes = std::iter::once(op)
            .chain(undo)
            .any(|op| matches!(op, Op::WriteFile { .. }));
        let rendered = writes && renders(op, after) && undo.iter().all(|op| renders(op, before));
        let leave_out = |op: &Op| match op {
            Op::WriteFile { netns, file, .. } if rendered => Op::WriteFile {
                netns: netns.clone(),
                file: *file,
                content: FileText::default(),
            },
            op => op.clone(),
        };
        JournalStep {
            op: leave_out(op),
            undo: undo.iter().map(leave_out).collect(),
            rendered,
        }
    }

    /// Puts back the contents [`recorded`](Self::recorded) left out.
    fn render(&mut self, before: &EtcFiles, after: &EtcFiles) -> Result<(), String> {
        if !self.rendered {
            return Ok(());
        }
        let fill = |op: &mut Op, files: &EtcFiles| match op {
            Op::WriteFile { netns, file, content } => match files.get(netns, *file) {
                Some(text) => {
                    *content = text;
                    Ok(())
                }
                None => Err(format!("its model has no {file} for sandbox {netns}")),
            },
            _ => Ok(()),
        };
        fill(&mut self.op, after)?;
        self.undo.iter_mut().try_for_each(|op| fill(op, before))?;
        self.rendered = false;
        Ok(())
    }
}

/// A transaction that began and never ended: a crash, a kill -9, a power cut.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenTransaction {
    pub tx: u64,
    pub command: String,
    pub steps: Vec<JournalStep>,
    /// Steps whose `step` line reached the journal.
    pub done: usize,
    /// Set when a rollback already ran and the kernel refused these undo operations:
    /// they, in order, are what is left to undo.
    pub pending: Option<Vec<Op>>,
}

impl OpenTransaction {
    /// The journaled steps as plan steps (with no source statement), for the executor.
    pub fn plan_steps(&self) -> Vec<crate::plan::Step> {
        self.steps
            .iter()
            .map(|s| crate::plan::Step {
                op: s.op.clone(),
                undo: crate::plan::Undo::Ops(s.undo.clone()),
                cause: None,
            })
            .collect()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("cannot use the state directory {dir}: {reason}")]
    Directory { dir: PathBuf, reason: String },
    #[error("cannot use {path}: {reason}")]
    File { path: PathBuf, reason: String },
    #[error("another cnm holds the lock on {dir} ({holder}); gave up after waiting {waited}s (see --lock-timeout)")]
    Locked {
        dir: PathBuf,
        holder: String,
        waited: u64,
    },
    #[error("{path} is corrupt at line {line}: {reason}; cnm leaves it as it is (`cnm recover --from-journal` keeps every line it can read, sets the file aside and rebuilds state.json)")]
    Corrupt {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    #[error("cannot write {path}: {reason}")]
    Write { path: PathBuf, reason: String },
    #[error(
        "transaction {tx} was recorded by an older cnm, without the state before it; it cannot be undone"
    )]
    NoBefore { tx: u64 },
    #[error("transaction {tx} in the journal cannot be rolled back: the contents of its files were left out to be rendered from its models, but {reason}")]
    Unrenderable { tx: u64, reason: String },
    #[error("the journal in {dir} holds no committed state to rebuild state.json from (it was written by an older cnm)")]
    NothingToRebuild { dir: PathBuf },
    #[error(transparent)]
    State(#[from] StateError),
}

/// The state directory, locked for as long as this value lives.
pub struct Journal {
    dir: PathBuf,
    _lock: Flock<File>,
    log: File,
    /// What opening or committing set right or could not do, for the session to say.
    notices: Vec<String>,
    rotate_bytes: u64,
    archives_kept: usize,
}

fn now() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

fn reason(error: &std::io::Error) -> String {
    match error.raw_os_error() {
        Some(libc::EROFS) => "it is on a read-only filesystem".into(),
        Some(libc::EACCES) | Some(libc::EPERM) => {
            "permission denied (run cnm as root, pick another --state-dir, or use --isolated)".into()
        }
        Some(libc::ENOTDIR) => "a part of its path is not a directory".into(),
        _ => files::describe(error),
    }
}

fn sha256(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

impl Journal {
    /// Opens (creating it if needed) and locks the state directory, waiting up to
    /// `timeout` for another cnm to let go. `who` is recorded for those who wait.
    pub fn open(dir: &Path, timeout: Duration, who: &str) -> Result<Journal, JournalError> {
        Journal::open_waiting(dir, timeout, who, |_| {})
    }

    /// As [`Journal::open`]; if another cnm holds the lock, `waiting` is told at once
    /// who it is (pid, command and since when), before any wait.
    pub fn open_waiting(
        dir: &Path,
        timeout: Duration,
        who: &str,
        waiting: impl FnOnce(&str),
    ) -> Result<Journal, JournalError> {
        let mut waiting = Some(waiting);
        let directory_error = |reason: String| JournalError::Directory {
            dir: dir.to_path_buf(),
            reason,
        };
        let file_error = |name: &str, e: std::io::Error| JournalError::File {
            path: dir.join(name),
            reason: reason(&e),
        };
        files::check_dir(dir, true).map_err(directory_error)?;
        std::fs::create_dir_all(dir).map_err(|e| directory_error(reason(&e)))?;
        let warning = files::check_dir(dir, true).map_err(directory_error)?;
        let mut file =
            files::open_writable(&dir.join(LOCK_FILE), false).map_err(|e| file_error(LOCK_FILE, e))?;
        let started = Instant::now();
        let lock = loop {
            match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                Ok(lock) => break lock,
                Err((returned, errno)) if errno == nix::errno::Errno::EWOULDBLOCK => {
                    file = returned;
                    let holder = || {
                        let mut holder = String::new();
                        let _ = (&file)
                            .rewind()
                            .and_then(|()| (&file).take(4096).read_to_string(&mut holder));
                        holder.trim().to_string()
                    };
                    if started.elapsed() >= timeout {
                        return Err(JournalError::Locked {
                            dir: dir.to_path_buf(),
                            holder: holder(),
                            waited: started.elapsed().as_secs(),
                        });
                    }
                    if let Some(waiting) = waiting.take() {
                        waiting(&holder());
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err((_, errno)) => return Err(file_error(LOCK_FILE, std::io::Error::from(errno))),
            }
        };
        // Tell whoever waits who holds the lock.
        let holder = format!("pid {}: {who}, since {}", std::process::id(), now());
        let _ = lock
            .set_len(0)
            .and_then(|()| lock.write_all_at(holder.as_bytes(), 0));
        let log =
            files::open_writable(&dir.join(JOURNAL_FILE), true).map_err(|e| file_error(JOURNAL_FILE, e))?;
        let mut journal = Journal {
            dir: dir.to_path_buf(),
            _lock: lock,
            log,
            notices: warning.into_iter().collect(),
            rotate_bytes: ROTATE_BYTES,
            archives_kept: ARCHIVES_KEPT,
        };
        // A journal corrupt before its end is left as it is: what reads it says so.
        match journal.remove_torn_end() {
            Err(JournalError::Corrupt { .. }) => return Ok(journal),
            result => result?,
        }
        journal.finish_interrupted_commit()?;
        Ok(journal)
    }

    /// Archives `journal.jsonl` once it reaches `bytes` rather than a few MiB, and keeps
    /// `archives` archives rather than [`ARCHIVES_KEPT`] (tests).
    pub fn set_rotation(&mut self, bytes: u64, archives: usize) {
        self.rotate_bytes = bytes;
        self.archives_kept = archives;
    }

    /// What opening (or the last commit) set right, or warns of, in words; said once.
    pub fn take_notices(&mut self) -> Vec<String> {
        std::mem::take(&mut self.notices)
    }

    fn path(&self) -> PathBuf {
        self.dir.join(JOURNAL_FILE)
    }

    fn write_error(&self, path: PathBuf) -> impl Fn(std::io::Error) -> JournalError {
        move |e| JournalError::Write {
            path: path.clone(),
            reason: reason(&e),
        }
    }

    /// A last line cut short — by a crash, or a full disk, during an append — is
    /// expected: it is copied aside (`journal.jsonl.torn-TIME`) and removed, and said.
    /// The transaction it belonged to is then open, and recovered as any other.
    fn remove_torn_end(&mut self) -> Result<(), JournalError> {
        let path = self.path();
        let tail = read_tail(&self.log, &path)?;
        let Some(torn) = tail.torn else {
            return Ok(());
        };
        let copy = files::aside(&self.dir, "journal.jsonl.torn");
        files::create_new(&copy)
            .and_then(|mut f| f.write_all(&torn.bytes).and_then(|()| f.sync_all()))
            .map_err(|e| JournalError::Write {
                path: copy.clone(),
                reason: format!(
                    "{} (cnm keeps a copy of the line cut short at the end of {} before it removes it)",
                    reason(&e),
                    path.display()
                ),
            })?;
        self.log
            .set_len(torn.offset)
            .and_then(|()| self.log.sync_all())
            .map_err(self.write_error(path.clone()))?;
        let open = match &tail.last {
            Some(record) if !record.ends() => format!("; transaction {} was under way", record.tx()),
            _ => String::new(),
        };
        self.notices.push(format!(
            "{} ended in a line cut short ({} bytes, left by a crash or a full disk); removed it and kept it in {}{open}",
            path.display(),
            torn.bytes.len(),
            copy.display()
        ));
        Ok(())
    }

    /// A commit whose `commit` line reached the journal but whose rename did not happen
    /// is finished; a `state.json.next` that no commit line vouches for (a crash before
    /// the commit, or a file planted there) is removed, never read.
    fn finish_interrupted_commit(&mut self) -> Result<(), JournalError> {
        let next = self.dir.join(NEXT_STATE_FILE);
        if std::fs::symlink_metadata(&next).is_err() {
            return Ok(());
        }
        let last = read_tail(&self.log, &self.path())?.last;
        let bytes = files::read_bounded(&next, MAX_STATE_BYTES).ok().flatten();
        let vouched = bytes.is_some_and(|bytes| vouches(last.as_ref(), &bytes));
        if vouched {
            std::fs::rename(&next, self.dir.join(STATE_FILE))
                .and_then(|()| sync_dir(&self.dir))
                .map_err(self.write_error(next))?;
            let tx = last.map_or(0, |r| r.tx());
            self.notices.push(format!(
                "transaction {tx} was committed, but cnm stopped before its state file was put in place; finished it"
            ));
            return Ok(());
        }
        std::fs::remove_file(&next).map_err(self.write_error(next.clone()))?;
        if last.as_ref().is_none_or(Record::ends) {
            self.notices.push(format!(
                "removed {}, which no commit in the journal vouches for",
                next.display()
            ));
        }
        Ok(())
    }

    pub fn state(&self) -> Result<Model, JournalError> {
        Ok(state::load(&self.dir)?)
    }

    /// Every record of `journal.jsonl` (not of the archives).
    pub fn records(&self) -> Result<Vec<Record>, JournalError> {
        read_records(&self.dir)
    }

    /// The transaction that began and never ended, if there is one. Reads only the end
    /// of the journal unless one is open.
    pub fn open_transaction(&self) -> Result<Option<OpenTransaction>, JournalError> {
        match read_tail(&self.log, &self.path())?.last {
            Some(record) if !record.ends() => open_transaction(&self.records()?),
            _ => Ok(None),
        }
    }

    /// The number the next transaction gets.
    fn next_tx(&self) -> Result<u64, JournalError> {
        if let Some(last) = read_tail(&self.log, &self.path())?.last {
            return Ok(last.tx() + 1);
        }
        for (_, segment) in segments(&self.dir) {
            if let Some(file) = files::open_read(&segment).ok().flatten() {
                if let Ok(Tail { last: Some(last), .. }) = read_tail(&file, &segment) {
                    return Ok(last.tx() + 1);
                }
            }
        }
        Ok(1)
    }

    /// Appends one record; if that fails, what part of it was written is cut off again,
    /// so that the journal never keeps half a line of this process.
    fn append(&mut self, record: &Record, sync: bool) -> Result<(), JournalError> {
        let mut line = serde_json::to_string(record).expect("a record serialises");
        line.push('\n');
        let length = self.log.metadata().map(|m| m.len());
        let written =
            self.log
                .write_all(line.as_bytes())
                .and_then(|()| if sync { self.log.sync_data() } else { Ok(()) });
        if let Err(error) = written {
            if let Ok(length) = length {
                let _ = self.log.set_len(length).and_then(|()| self.log.sync_data());
            }
            return Err(JournalError::Write {
                path: self.path(),
                reason: reason(&error),
            });
        }
        Ok(())
    }

    /// Records a transaction's plan, the model before it and the model it commits, on
    /// disk, before anything is done. `undoes` names the transaction it undoes, if it is
    /// an undo.
    pub fn begin(
        &mut self,
        command: &str,
        sources: &[String],
        plan: &Plan,
        before: &Model,
        after: &Model,
        undoes: Option<u64>,
    ) -> Result<u64, JournalError> {
        let tx = self.next_tx()?;
        let (rendered_before, rendered_after) = (EtcFiles::new(before), EtcFiles::new(after));
        let steps = plan
            .steps
            .iter()
            .map(|s| JournalStep::recorded(&s.op, &s.undo_ops(), &rendered_before, &rendered_after))
            .collect();
        let record = Record::Begin {
            tx,
            time: now(),
            command: command.to_string(),
            sources: sources.to_vec(),
            steps,
            before: Some(Box::new(before.clone())),
            after: Some(Box::new(after.clone())),
            undoes,
        };
        self.append(&record, true)?;
        Ok(tx)
    }

    pub fn step_done(&mut self, tx: u64, index: usize) -> Result<(), JournalError> {
        self.append(&Record::Step { tx, index }, false)
    }

    /// Makes `model` the committed state. An error means it is not committed: nothing
    /// of it is left on disk, and the caller must undo what the transaction did. Once
    /// the `commit` line is on disk the transaction is committed whatever follows; if
    /// the state file cannot be put in place then, a notice says so and the next cnm
    /// command finishes it.
    pub fn commit(&mut self, tx: u64, model: &Model) -> Result<(), JournalError> {
        let next = self.dir.join(NEXT_STATE_FILE);
        let json = state::to_json(model);
        let written = match std::fs::remove_file(&next) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => files::create_new(&next).and_then(|mut file| {
                file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
                file.write_all(json.as_bytes())?;
                file.sync_all()
            }),
        };
        if let Err(error) = written {
            // Free what the partial file took: the rollback's line needs the room.
            let _ = std::fs::remove_file(&next);
            return Err(JournalError::Write {
                path: next,
                reason: reason(&error),
            });
        }
        let commit = Record::Commit {
            tx,
            time: now(),
            state_sha256: Some(sha256(json.as_bytes())),
        };
        if let Err(error) = self.append(&commit, true) {
            let _ = std::fs::remove_file(&next);
            return Err(error);
        }
        if let Err(error) =
            std::fs::rename(&next, self.dir.join(STATE_FILE)).and_then(|()| sync_dir(&self.dir))
        {
            self.notices.push(format!(
                "warning: transaction {tx} is committed, but {} could not replace {}: {}; the next cnm command puts it in place",
                next.display(),
                STATE_FILE,
                reason(&error)
            ));
            return Ok(());
        }
        self.rotate();
        Ok(())
    }

    pub fn rolled_back(
        &mut self,
        tx: u64,
        why: &str,
        undone: usize,
        errors: Vec<String>,
    ) -> Result<(), JournalError> {
        let record = Record::RolledBack {
            tx,
            time: now(),
            reason: why.to_string(),
            undone,
            errors,
        };
        self.append(&record, true)?;
        self.rotate();
        Ok(())
    }

    /// Records that rolling back left `pending` undone: the transaction stays open.
    pub fn rollback_incomplete(
        &mut self,
        tx: u64,
        why: &str,
        errors: Vec<String>,
        pending: Vec<Op>,
    ) -> Result<(), JournalError> {
        let record = Record::RollbackIncomplete {
            tx,
            time: now(),
            reason: why.to_string(),
            errors,
            pending,
        };
        self.append(&record, true)
    }

    pub fn recovered(&mut self, tx: u64, undone: usize, errors: Vec<String>) -> Result<(), JournalError> {
        self.append(
            &Record::Recovered {
                tx,
                time: now(),
                undone,
                errors,
            },
            true,
        )?;
        self.rotate();
        Ok(())
    }

    /// Once a transaction has ended, archives `journal.jsonl` if it has grown long:
    /// renamed whole to the next `journal-NNNNNN.jsonl`, so every archive holds whole
    /// transactions; the oldest archives beyond the number kept are deleted. A failure
    /// only costs speed or space: it is said, and the journal goes on.
    fn rotate(&mut self) {
        match self.log.metadata() {
            Ok(meta) if meta.len() >= self.rotate_bytes => {}
            _ => return,
        }
        let archives = segments(&self.dir);
        let number = archives.first().map_or(1, |(n, _)| n + 1);
        let to = self.dir.join(segment_name(number));
        let rotated = std::fs::rename(self.path(), &to)
            .and_then(|()| sync_dir(&self.dir))
            .and_then(|()| files::open_writable(&self.path(), true));
        match rotated {
            Ok(log) => self.log = log,
            Err(error) => {
                self.notices.push(format!(
                    "warning: cannot archive {} as {}: {}",
                    self.path().display(),
                    to.display(),
                    reason(&error)
                ));
                return;
            }
        }
        // The new archive is one of those kept.
        for (_, old) in archives.iter().skip(self.archives_kept.saturating_sub(1)) {
            if let Err(error) = std::fs::remove_file(old) {
                self.notices.push(format!(
                    "warning: cannot delete the old journal archive {}: {}",
                    old.display(),
                    reason(&error)
                ));
            }
        }
    }

    /// Rebuilds `state.json` from the journal, for a state file that is lost or corrupt,
    /// or a journal corrupt before its end: every line of `journal.jsonl` that can be
    /// read is kept (the file itself is set aside first if some cannot), and the state
    /// becomes the last one a transaction committed (or found, when it began).
    pub fn rebuild_state(&mut self) -> Result<Rebuilt, JournalError> {
        let path = self.path();
        let bytes = read_all(&path)?;
        let mut records = Vec::new();
        let mut dropped = Vec::new();
        for (i, line) in bytes.split(|&b| b == b'\n').enumerate() {
            if blank(line) {
                continue;
            }
            match serde_json::from_slice::<Record>(line) {
                Ok(record) => records.push(record),
                Err(_) => dropped.push(i + 1),
            }
        }
        let mut found = last_known_state(&records);
        let mut began = records.iter().any(|r| matches!(r, Record::Begin { .. }));
        for (_, segment) in segments(&self.dir) {
            if found.is_some() {
                break;
            }
            let older: Vec<Record> = read_all(&segment)?
                .split(|&b| b == b'\n')
                .filter_map(|line| serde_json::from_slice(line).ok())
                .collect();
            began |= older.iter().any(|r| matches!(r, Record::Begin { .. }));
            found = last_known_state(&older);
        }
        let (model, from) = match found {
            Some(found) => found,
            None if !began => (Model::empty(), "no transaction was ever committed".to_string()),
            None => {
                return Err(JournalError::NothingToRebuild {
                    dir: self.dir.clone(),
                })
            }
        };
        let mut kept = None;
        if !dropped.is_empty() {
            let aside = files::aside(&self.dir, "journal.jsonl.corrupt");
            let fresh = self.dir.join("journal.jsonl.rebuilt");
            let _ = std::fs::remove_file(&fresh);
            let mut text = String::new();
            for record in &records {
                text.push_str(&serde_json::to_string(record).expect("a record serialises"));
                text.push('\n');
            }
            files::create_new(&fresh)
                .and_then(|mut f| f.write_all(text.as_bytes()).and_then(|()| f.sync_all()))
                .and_then(|()| std::fs::hard_link(&path, &aside))
                .and_then(|()| std::fs::rename(&fresh, &path))
                .and_then(|()| sync_dir(&self.dir))
                .and_then(|()| files::open_writable(&path, true))
                .map(|log| self.log = log)
                .map_err(self.write_error(path.clone()))?;
            kept = Some(aside);
        }
        let state_path = self.dir.join(STATE_FILE);
        let mut replaced = None;
        if std::fs::symlink_metadata(&state_path).is_ok() {
            let aside = files::aside(&self.dir, "state.json.replaced");
            std::fs::hard_link(&state_path, &aside).map_err(self.write_error(aside.clone()))?;
            replaced = Some(aside);
        }
        let next = self.dir.join(NEXT_STATE_FILE);
        let _ = std::fs::remove_file(&next);
        files::create_new(&next)
            .and_then(|mut f| {
                f.write_all(state::to_json(&model).as_bytes())
                    .and_then(|()| f.sync_all())
            })
            .and_then(|()| std::fs::rename(&next, &state_path))
            .and_then(|()| sync_dir(&self.dir))
            .map_err(self.write_error(state_path))?;
        Ok(Rebuilt {
            from,
            dropped,
            kept,
            replaced,
        })
    }
}

/// What [`Journal::rebuild_state`] did.
#[derive(Debug)]
pub struct Rebuilt {
    /// Where the state came from, in words.
    pub from: String,
    /// The lines of `journal.jsonl` that could not be read, and were dropped.
    pub dropped: Vec<usize>,
    /// The journal as it was, set aside, if lines were dropped.
    pub kept: Option<PathBuf>,
    /// The state file as it was, set aside, if there was one.
    pub replaced: Option<PathBuf>,
}

/// The last committed state that `records` know of: what the last committed
/// transaction committed, or what a later one found when it began.
fn last_known_state(records: &[Record]) -> Option<(Model, String)> {
    let committed: HashSet<u64> = records
        .iter()
        .filter_map(|r| match r {
            Record::Commit { tx, .. } => Some(*tx),
            _ => None,
        })
        .collect();
    let mut found = None;
    for record in records {
        if let Record::Begin {
            tx,
            time,
            command,
            before,
            after,
            ..
        } = record
        {
            if let Some(before) = before {
                found = Some((
                    (**before).clone(),
                    format!("the state before transaction {tx} (`{command}`, {time})"),
                ));
            }
            if let (true, Some(after)) = (committed.contains(tx), after) {
                found = Some((
                    (**after).clone(),
                    format!("the state transaction {tx} (`{command}`, {time}) committed"),
                ));
            }
        }
    }
    found
}

/// Whether the `commit` line `last` vouches for `bytes` as the new state file.
fn vouches(last: Option<&Record>, bytes: &[u8]) -> bool {
    match last {
        Some(Record::Commit {
            state_sha256: Some(digest),
            ..
        }) => *digest == sha256(bytes),
        // An older cnm's commit named no digest: its commit line alone decides.
        Some(Record::Commit {
            state_sha256: None, ..
        }) => true,
        _ => false,
    }
}

fn segment_name(number: u64) -> String {
    format!("journal-{number:06}.jsonl")
}

/// The archived journals in `dir`, newest first.
fn segments(dir: &Path) -> Vec<(u64, PathBuf)> {
    let mut found: Vec<(u64, PathBuf)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name();
            let number = name
                .to_str()?
                .strip_prefix("journal-")?
                .strip_suffix(".jsonl")?
                .parse()
                .ok()?;
            Some((number, entry.path()))
        })
        .collect();
    found.sort_by_key(|b| std::cmp::Reverse(b.0));
    found
}

fn read_all(path: &Path) -> Result<Vec<u8>, JournalError> {
    let mut bytes = Vec::new();
    if let Some(mut file) = files::open_read(path).map_err(|e| JournalError::File {
        path: path.to_path_buf(),
        reason: reason(&e),
    })? {
        file.read_to_end(&mut bytes).map_err(|e| JournalError::File {
            path: path.to_path_buf(),
            reason: reason(&e),
        })?;
    }
    Ok(bytes)
}

/// The end of a journal file: its last record, and a last line cut short, if any.
struct Tail {
    last: Option<Record>,
    torn: Option<Torn>,
}

/// A line cut short at the end of the journal, and where it starts.
struct Torn {
    offset: u64,
    bytes: Vec<u8>,
}

/// Reads a file backwards, a line at a time, from its end.
struct Backward<'a> {
    file: &'a File,
    /// Where `buf` starts in the file; what comes before is not read yet.
    start: u64,
    buf: Vec<u8>,
}

impl Backward<'_> {
    /// Reads more of what comes before `start`, at least 64 KiB and doubling.
    fn more(&mut self) -> std::io::Result<bool> {
        if self.start == 0 {
            return Ok(false);
        }
        let n = (self.buf.len() as u64).max(64 << 10).min(self.start);
        let mut chunk = vec![0; n as usize];
        self.file.read_exact_at(&mut chunk, self.start - n)?;
        chunk.extend_from_slice(&self.buf);
        self.buf = chunk;
        self.start -= n;
        Ok(true)
    }

    /// What follows the last newline — a line cut short, if not empty — and where.
    fn fragment(&mut self) -> std::io::Result<(u64, Vec<u8>)> {
        loop {
            if let Some(i) = self.buf.iter().rposition(|&b| b == b'\n') {
                return Ok((self.start + i as u64 + 1, self.buf.split_off(i + 1)));
            }
            if !self.more()? {
                return Ok((self.start, std::mem::take(&mut self.buf)));
            }
        }
    }

    /// The line before what was read already (without its newline), and where it
    /// starts; `None` at the start of the file.
    fn line(&mut self) -> std::io::Result<Option<(u64, Vec<u8>)>> {
        if self.buf.is_empty() && !self.more()? {
            return Ok(None);
        }
        loop {
            let body = self.buf.len() - 1;
            if let Some(i) = self.buf[..body].iter().rposition(|&b| b == b'\n') {
                let mut line = self.buf.split_off(i + 1);
                line.pop();
                return Ok(Some((self.start + i as u64 + 1, line)));
            }
            if !self.more()? {
                let mut line = std::mem::take(&mut self.buf);
                line.pop();
                return Ok(Some((self.start, line)));
            }
        }
    }
}

/// The end of the journal `file` (at `path`), read backwards: a last line that was cut
/// short or cannot be read is torn; one before it that cannot be read is corruption.
fn read_tail(file: &File, path: &Path) -> Result<Tail, JournalError> {
    let io_error = |e: std::io::Error| JournalError::File {
        path: path.to_path_buf(),
        reason: reason(&e),
    };
    let length = file.metadata().map_err(io_error)?.len();
    let mut back = Backward {
        file,
        start: length,
        buf: Vec::new(),
    };
    let (offset, fragment) = back.fragment().map_err(io_error)?;
    let mut torn = (!fragment.is_empty()).then_some(Torn {
        offset,
        bytes: fragment,
    });
    while let Some((offset, line)) = back.line().map_err(io_error)? {
        if blank(&line) {
            continue;
        }
        match serde_json::from_slice::<Record>(&line) {
            Ok(record) => {
                return Ok(Tail {
                    last: Some(record),
                    torn,
                })
            }
            Err(_) if torn.is_none() => {
                let mut bytes = line;
                bytes.push(b'\n');
                torn = Some(Torn { offset, bytes });
            }
            Err(error) => {
                return Err(JournalError::Corrupt {
                    path: path.to_path_buf(),
                    line: line_number(file, offset),
                    reason: error.to_string(),
                })
            }
        }
    }
    Ok(Tail { last: None, torn })
}

/// The number of the line that starts at `offset`.
fn line_number(file: &File, offset: u64) -> usize {
    let mut bytes = vec![0; offset as usize];
    match file.read_exact_at(&mut bytes, 0) {
        Ok(()) => bytes.iter().filter(|&&b| b == b'\n').count() + 1,
        Err(_) => 0,
    }
}

/// What a command that only reads finds at the end of the journal, without the lock.
#[derive(Debug, Default)]
pub struct Look {
    /// The journal ends in a line cut short (or being written right now).
    pub torn: bool,
    /// The last transaction began and did not end (or is under way right now).
    pub open: Option<u64>,
    /// `state.json.next` is there: a commit under way, cut short, or a stale file.
    pub next: bool,
}

impl Look {
    /// Whether something needs setting right by whoever can take the lock.
    pub fn unsettled(&self) -> bool {
        self.torn || self.open.is_some() || self.next
    }
}

/// The end of the journal in `dir`, read without the lock and without writing.
pub fn look(dir: &Path) -> Result<Look, JournalError> {
    files::check_dir(dir, false).map_err(|reason| JournalError::Directory {
        dir: dir.to_path_buf(),
        reason,
    })?;
    let next = std::fs::symlink_metadata(dir.join(NEXT_STATE_FILE)).is_ok();
    let path = dir.join(JOURNAL_FILE);
    let file = files::open_read(&path).map_err(|e| JournalError::File {
        path: path.clone(),
        reason: reason(&e),
    })?;
    let Some(file) = file else {
        return Ok(Look {
            next,
            ..Look::default()
        });
    };
    let tail = read_tail(&file, &path)?;
    Ok(Look {
        torn: tail.torn.is_some(),
        open: tail.last.filter(|r| !r.ends()).map(|r| r.tx()),
        next,
    })
}

/// The state a commit vouches for but that is not in place yet (`state.json.next`), read
/// without the lock and without writing: for a command that only reads while another
/// cnm holds the lock.
pub fn committed_next(dir: &Path) -> Option<Model> {
    let path = dir.join(JOURNAL_FILE);
    let file = files::open_read(&path).ok()??;
    let last = read_tail(&file, &path).ok()?.last;
    let next = dir.join(NEXT_STATE_FILE);
    let bytes = files::read_bounded(&next, MAX_STATE_BYTES).ok()??;
    if !matches!(last, Some(Record::Commit { .. })) || !vouches(last.as_ref(), &bytes) {
        return None;
    }
    state::parse(&next, std::str::from_utf8(&bytes).ok()?).ok()
}

/// Every record of `journal.jsonl` in `dir` (not of the archives); none if there is no
/// journal yet. A line that cannot be read is an error that names it, but for a last
/// line cut short, which the next cnm that takes the lock removes.
pub fn read_records(dir: &Path) -> Result<Vec<Record>, JournalError> {
    let path = dir.join(JOURNAL_FILE);
    let bytes = read_all(&path)?;
    let records = parse_lines(&path, &bytes)?;
    Ok(records.into_iter().map(|(record, _)| record).collect())
}

/// One journal line, read only for what `log` and `undo` need: the plans and models in
/// it are skipped, not built.
#[derive(Deserialize)]
struct Summary {
    #[serde(rename = "type")]
    kind: String,
    tx: u64,
    #[serde(default)]
    time: Option<String>,
    #[serde(default)]
    command: Option<String>,
    #[serde(default)]
    steps: Option<Vec<IgnoredAny>>,
    #[serde(default)]
    undoes: Option<u64>,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    undone: Option<usize>,
    #[serde(default)]
    pending: Option<Vec<IgnoredAny>>,
}

/// The lines of one journal file read as records or their summaries, each with the line
/// it came from; blank lines skipped.
fn parse_lines<T: serde::de::DeserializeOwned>(
    path: &Path,
    bytes: &[u8],
) -> Result<Vec<(T, usize)>, JournalError> {
    let lines: Vec<&[u8]> = bytes.split(|&b| b == b'\n').collect();
    let last = lines.iter().rposition(|line| !blank(line));
    let mut found = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if blank(line) {
            continue;
        }
        if let Some(value) = parse_line(path, line, i, Some(i) == last)? {
            found.push((value, i));
        }
    }
    Ok(found)
}

fn blank(line: &[u8]) -> bool {
    line.iter().all(u8::is_ascii_whitespace)
}

/// Line `at` of a journal file, read as a record or its summary. A line that cannot be
/// read is the end a crash cut short if it is the `last` line with anything on it
/// (`None`: the next cnm that takes the lock removes it), and corruption anywhere else.
fn parse_line<T: serde::de::DeserializeOwned>(
    path: &Path,
    line: &[u8],
    at: usize,
    last: bool,
) -> Result<Option<T>, JournalError> {
    match serde_json::from_slice::<T>(line) {
        Ok(value) => Ok(Some(value)),
        Err(_) if last => Ok(None),
        Err(error) => Err(JournalError::Corrupt {
            path: path.to_path_buf(),
            line: at + 1,
            reason: error.to_string(),
        }),
    }
}

/// The journal files of `dir`, newest first: `journal.jsonl`, then the archives.
fn newest_first(dir: &Path) -> impl Iterator<Item = PathBuf> {
    std::iter::once(dir.join(JOURNAL_FILE)).chain(segments(dir).into_iter().map(|(_, p)| p))
}

/// How a transaction ended, as the journal's last word on it says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Committed,
    RolledBack(String),
    Recovered(usize),
    /// A rollback the kernel refused in part: so many undo operations are pending.
    Incomplete(usize),
    Open,
}

/// One transaction, as `cnm log` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transaction {
    pub tx: u64,
    pub time: String,
    pub steps: usize,
    pub command: String,
    pub outcome: Outcome,
}

/// The transactions of the journal in `dir`, newest first: at most `limit` of them
/// (all with `None`), and whether older ones were left out. Reads the journal files
/// backwards, line by line, only as far back as it lists: the cost of a page does not
/// grow with the history.
pub fn history(dir: &Path, limit: Option<usize>) -> Result<(Vec<Transaction>, bool), JournalError> {
    let limit = limit.unwrap_or(usize::MAX);
    let mut listed = Vec::new();
    for path in newest_first(dir) {
        let bytes = read_all(&path)?;
        let lines: Vec<&[u8]> = bytes.split(|&b| b == b'\n').collect();
        // Read backwards, the last word on a transaction comes first: it decides (a
        // rollback left incomplete may be finished by a later command).
        let mut last_word: HashMap<u64, Outcome> = HashMap::new();
        let mut at_end = true;
        for (i, line) in lines.iter().enumerate().rev() {
            if blank(line) {
                continue;
            }
            let last_line = std::mem::replace(&mut at_end, false);
            let Some(line) = parse_line::<Summary>(&path, line, i, last_line)? else {
                continue;
            };
            let outcome = match line.kind.as_str() {
                "begin" => {
                    if listed.len() == limit {
                        return Ok((listed, true));
                    }
                    listed.push(Transaction {
                        tx: line.tx,
                        time: line.time.unwrap_or_default(),
                        steps: line.steps.map_or(0, |s| s.len()),
                        command: line.command.unwrap_or_default(),
                        outcome: last_word.remove(&line.tx).unwrap_or(Outcome::Open),
                    });
                    continue;
                }
                "commit" => Outcome::Committed,
                "rolled-back" => Outcome::RolledBack(line.reason.unwrap_or_default()),
                "recovered" => Outcome::Recovered(line.undone.unwrap_or(0)),
                "rollback-incomplete" => Outcome::Incomplete(line.pending.map_or(0, |p| p.len())),
                _ => continue,
            };
            last_word.entry(line.tx).or_insert(outcome);
        }
    }
    Ok((listed, false))
}

/// The transaction `undo` takes back, with the model before it: the last committed one
/// that changed the model, is not an undo and was not undone since (undoing twice goes
/// back two). `None`
/// when there is nothing left to undo. Reads the journal backwards, only as far as the
/// transaction it finds.
pub fn undo_target(dir: &Path) -> Result<Option<(u64, Model)>, JournalError> {
    let mut committed = HashSet::new();
    let mut undone = HashSet::new();
    for path in newest_first(dir) {
        let bytes = read_all(&path)?;
        let lines = parse_lines::<Summary>(&path, &bytes)?;
        for (line, at) in lines.into_iter().rev() {
            match (line.kind.as_str(), line.undoes) {
                ("commit", _) => {
                    committed.insert(line.tx);
                }
                ("begin", Some(target)) if committed.contains(&line.tx) => {
                    undone.insert(target);
                }
                ("begin", None) if committed.contains(&line.tx) && !undone.contains(&line.tx) => {
                    let text = bytes.split(|&b| b == b'\n').nth(at).unwrap_or_default();
                    let record: Record = serde_json::from_slice(text).map_err(|e| JournalError::Corrupt {
                        path: path.clone(),
                        line: at + 1,
                        reason: e.to_string(),
                    })?;
                    match record {
                        // A transaction that left the model as it was (`restore` made
                        // the kernel match it again) has nothing to take back.
                        Record::Begin {
                            before: Some(before),
                            after: Some(after),
                            ..
                        } if before == after => {}
                        Record::Begin {
                            before: Some(before), ..
                        } => return Ok(Some((line.tx, *before))),
                        _ => return Err(JournalError::NoBefore { tx: line.tx }),
                    }
                }
                _ => {}
            }
        }
    }
    Ok(None)
}

/// The last transaction, if it began and never ended, with its steps' files rendered.
pub fn open_transaction(records: &[Record]) -> Result<Option<OpenTransaction>, JournalError> {
    let Some(begin) = records.iter().rposition(|r| matches!(r, Record::Begin { .. })) else {
        return Ok(None);
    };
    let Record::Begin {
        tx,
        command,
        steps,
        before,
        after,
        ..
    } = &records[begin]
    else {
        unreachable!()
    };
    let mut done = 0;
    let mut pending = None;
    for record in &records[begin + 1..] {
        match record {
            Record::Step { tx: t, index } if t == tx => done = done.max(index + 1),
            Record::RollbackIncomplete {
                tx: t, pending: ops, ..
            } if t == tx => pending = Some(ops.clone()),
            Record::Commit { tx: t, .. }
            | Record::RolledBack { tx: t, .. }
            | Record::Recovered { tx: t, .. }
                if t == tx =>
            {
                return Ok(None)
            }
            _ => {}
        }
    }
    let mut steps = steps.clone();
    if steps.iter().any(|s| s.rendered) {
        let unrenderable = |reason: String| JournalError::Unrenderable { tx: *tx, reason };
        let (Some(before), Some(after)) = (before, after) else {
            return Err(unrenderable(
                "the journal does not hold both of its models".into(),
            ));
        };
        let (before, after) = (EtcFiles::new(before), EtcFiles::new(after));
        for step in &mut steps {
            step.render(&before, &after).map_err(unrenderable)?;
        }
    }
    Ok(Some(OpenTransaction {
        tx: *tx,
        command: command.clone(),
        steps,
        done,
        pending,
    }))
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::EtcFile;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("cnm-journal-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn plan_of(ops: Vec<Op>) -> Plan {
        Plan {
            changes: Vec::new(),
            steps: ops
                .into_iter()
                .map(|op| crate::plan::Step {
                    undo: crate::plan::Undo::Inverse,
                    op,
                    cause: None,
                })
                .collect(),
        }
    }

    fn one_step() -> Plan {
        plan_of(vec![Op::AddNetns { netns: "A".into() }])
    }

    #[test]
    fn an_unfinished_transaction_is_found_with_its_steps() {
        let dir = temp_dir("open");
        let mut journal = Journal::open(&dir, Duration::ZERO, "test").unwrap();
        assert_eq!(journal.open_transaction().unwrap(), None);
        let plan = plan_of(vec![
            Op::AddNetns { netns: "A".into() },
            Op::AddNetns { netns: "B".into() },
            Op::AddNetns { netns: "C".into() },
        ]);
        let tx = journal
            .begin(
                "cnm apply",
                &["a.cnm".into()],
                &plan,
                &Model::empty(),
                &Model::empty(),
                None,
            )
            .unwrap();
        journal.step_done(tx, 0).unwrap();
        let open = journal.open_transaction().unwrap().unwrap();
        assert_eq!((open.tx, open.done), (1, 1));
        assert_eq!(open.pending, None);
        assert_eq!(
            *open.plan_steps()[2].undo_ops(),
            [Op::DelNetns {
                netns: "C".into(),
                links: Vec::new()
            }]
        );
        // A rollback the kernel refused in part leaves the transaction open, with what is
        // left to undo.
        let pending = vec![Op::DelNetns {
            netns: "A".into(),
            links: Vec::new(),
        }];
        journal
            .rollback_incomplete(tx, "step 2 failed", vec!["refused".into()], pending.clone())
            .unwrap();
        let open = journal.open_transaction().unwrap().unwrap();
        assert_eq!(open.pending, Some(pending));
        journal.recovered(tx, 2, Vec::new()).unwrap();
        assert_eq!(journal.open_transaction().unwrap(), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The model a script makes from `committed`, and the plan that gets there.
    fn planned(script: &str, committed: &Model) -> (Model, Plan) {
        crate::plan_text("test.cnm", script, committed)
    }

    #[test]
    fn files_are_journaled_as_their_models_render_them_and_read_back_whole() {
        let dir = temp_dir("rendered");
        let mut journal = Journal::open(&dir, Duration::ZERO, "test").unwrap();
        let two = "network n subnet 10.1.0.0/24\nsandbox a mode none\nsandbox b mode none\n\
                   connect a to n\nconnect b to n\n";
        let (first, _) = planned(two, &Model::empty());
        // A third sandbox rewrites the hosts files of the other two; undoing puts their
        // old contents back.
        let (second, plan) = planned(&format!("{two}sandbox c mode none\nconnect c to n\n"), &first);
        let writes = |steps: &[crate::plan::Step]| {
            let ops = steps
                .iter()
                .flat_map(|s| std::iter::once(s.op.clone()).chain(s.undo_ops().into_owned()));
            ops.filter(|op| matches!(op, Op::WriteFile { .. })).count()
        };
        assert_eq!(
            writes(&plan.steps),
            5,
            "three new files, two old ones to put back"
        );
        let tx = journal.begin("apply", &[], &plan, &first, &second, None).unwrap();
        let on_disk = std::fs::read_to_string(dir.join(JOURNAL_FILE)).unwrap();
        assert!(
            !on_disk.contains("localhost"),
            "no file's content is in the journal"
        );
        journal.step_done(tx, 0).unwrap();
        let open = journal.open_transaction().unwrap().unwrap();
        let read_back: Vec<(Op, Vec<Op>)> = open
            .plan_steps()
            .iter()
            .map(|s| (s.op.clone(), s.undo_ops().into_owned()))
            .collect();
        let planned: Vec<(Op, Vec<Op>)> = plan
            .steps
            .iter()
            .map(|s| (s.op.clone(), s.undo_ops().into_owned()))
            .collect();
        assert_eq!(read_back, planned);
        journal.recovered(tx, 1, Vec::new()).unwrap();

        // A content that the models do not render (written by hand, say) is kept whole.
        let odd = Op::WriteFile {
            netns: "a".into(),
            file: EtcFile::Hosts,
            content: "10.9.9.9\telsewhere\n".into(),
        };
        let tx = journal
            .begin("apply", &[], &plan_of(vec![odd.clone()]), &first, &second, None)
            .unwrap();
        let open = journal.open_transaction().unwrap().unwrap();
        assert_eq!((open.tx, open.plan_steps()[0].op.clone()), (tx, odd));
        assert!(std::fs::read_to_string(dir.join(JOURNAL_FILE))
            .unwrap()
            .contains("elsewhere"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn files_left_out_without_their_models_are_a_named_error() {
        let dir = temp_dir("unrenderable");
        let mut journal = Journal::open(&dir, Duration::ZERO, "test").unwrap();
        let (model, plan) = planned("sandbox a mode none\n", &Model::empty());
        journal
            .begin("apply", &[], &plan, &Model::empty(), &model, None)
            .unwrap();
        // As a journal edited by hand, or damaged, would have it.
        let path = dir.join(JOURNAL_FILE);
        let mut begin: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        begin.as_object_mut().unwrap().remove("after");
        std::fs::write(&path, format!("{begin}\n")).unwrap();
        let error = journal.open_transaction().unwrap_err().to_string();
        assert_eq!(
            error,
            "transaction 1 in the journal cannot be rolled back: the contents of its files were left out \
             to be rendered from its models, but the journal does not hold both of its models"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A model that differs from the empty one by a network's name.
    fn model_named(name: &str) -> Model {
        let mut model = Model::empty();
        model.networks.insert(
            name.into(),
            crate::model::Network {
                name: name.into(),
                id: name.into(),
                driver: crate::model::Driver::Bridge,
                subnet: "10.0.0.0/24".parse().unwrap(),
                gateway: "10.0.0.1".parse().unwrap(),
                ip_range: None,
                ipv6: None,
                bridge: Some(format!("cnm-{name}")),
                parent: None,
                mtu: 1500,
                internal: false,
            },
        );
        model
    }

    /// Commits one transaction from `before` to `after`.
    fn commit(journal: &mut Journal, before: &Model, after: &Model, undoes: Option<u64>) -> u64 {
        let tx = journal
            .begin("apply", &[], &one_step(), before, after, undoes)
            .unwrap();
        journal.commit(tx, after).unwrap();
        tx
    }

    #[test]
    fn undo_takes_back_the_last_transaction_not_yet_taken_back() {
        for rotation in [u64::MAX, 1] {
            let dir = temp_dir(&format!("undo-{rotation}"));
            let mut journal = Journal::open(&dir, Duration::ZERO, "test").unwrap();
            // With rotation 1, every transaction goes to an archive of its own.
            journal.set_rotation(rotation, ARCHIVES_KEPT);
            assert_eq!(undo_target(&dir).unwrap(), None);
            let (one, two) = (model_named("one"), model_named("two"));
            let t1 = commit(&mut journal, &Model::empty(), &one, None);
            let t2 = commit(&mut journal, &one, &two, None);
            // A transaction rolled back changed nothing: it is not a candidate.
            let t3 = journal
                .begin("apply", &[], &one_step(), &two, &one, None)
                .unwrap();
            journal.rolled_back(t3, "refused", 0, Vec::new()).unwrap();
            // Nor is one that left the model as it was (a `restore`).
            commit(&mut journal, &two, &two, None);
            assert_eq!(undo_target(&dir).unwrap(), Some((t2, one.clone())));
            commit(&mut journal, &two, &one, Some(t2));
            // Undoing again goes back one more, not forward again.
            assert_eq!(undo_target(&dir).unwrap(), Some((t1, Model::empty())));
            let u1 = commit(&mut journal, &one, &Model::empty(), Some(t1));
            assert_eq!(undo_target(&dir).unwrap(), None);
            assert_eq!(u1, 6, "numbers go on across archives");
            if rotation == 1 {
                assert_eq!(segments(&dir).len(), 6);
                assert_eq!(std::fs::read(dir.join(JOURNAL_FILE)).unwrap(), b"");
            }
            std::fs::remove_dir_all(&dir).unwrap();
        }

        // A journal from before cnm kept the state: said, not guessed.
        let dir = temp_dir("undo-old");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join(JOURNAL_FILE),
            "{\"type\":\"begin\",\"tx\":1,\"time\":\"t\",\"command\":\"apply\",\"sources\":[],\"steps\":[]}\n\
             {\"type\":\"commit\",\"tx\":1,\"time\":\"t\"}\n",
        )
        .unwrap();
        let err = undo_target(&dir).unwrap_err().to_string();
        assert!(err.contains("older cnm"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn log_lists_the_newest_first_and_reads_archives_only_as_far_as_it_needs() {
        let dir = temp_dir("history");
        let mut journal = Journal::open(&dir, Duration::ZERO, "test").unwrap();
        journal.set_rotation(1, ARCHIVES_KEPT);
        for _ in 0..5 {
            commit(&mut journal, &Model::empty(), &Model::empty(), None);
        }
        let tx = journal
            .begin(
                "apply broken",
                &[],
                &one_step(),
                &Model::empty(),
                &Model::empty(),
                None,
            )
            .unwrap();
        journal.rolled_back(tx, "step 1 failed", 0, Vec::new()).unwrap();
        let (listed, more) = history(&dir, Some(2)).unwrap();
        assert!(more);
        assert_eq!(
            listed
                .iter()
                .map(|t| (t.tx, t.outcome.clone()))
                .collect::<Vec<_>>(),
            [
                (6, Outcome::RolledBack("step 1 failed".into())),
                (5, Outcome::Committed)
            ]
        );
        assert_eq!(listed[0].command, "apply broken");
        assert_eq!(listed[0].steps, 1);
        // The oldest archives are not even read for the newest two.
        std::fs::write(dir.join(segment_name(1)), "not json\n{}\n").unwrap();
        assert!(history(&dir, Some(2)).is_ok());
        let err = history(&dir, None).unwrap_err().to_string();
        assert!(err.contains("journal-000001.jsonl is corrupt at line 1"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn only_the_newest_archives_are_kept() {
        let dir = temp_dir("kept");
        let mut journal = Journal::open(&dir, Duration::ZERO, "test").unwrap();
        journal.set_rotation(1, 3);
        let one = model_named("one");
        for i in 0..7 {
            let (before, after) = if i % 2 == 0 {
                (Model::empty(), one.clone())
            } else {
                (one.clone(), Model::empty())
            };
            commit(&mut journal, &before, &after, None);
        }
        let numbers: Vec<u64> = segments(&dir).into_iter().map(|(n, _)| n).collect();
        assert_eq!(numbers, [7, 6, 5]);
        assert!(journal.take_notices().is_empty());
        let (listed, more) = history(&dir, None).unwrap();
        assert_eq!(listed.iter().map(|t| t.tx).collect::<Vec<_>>(), [7, 6, 5]);
        assert!(!more);
        // Undo reaches back as far as the archives kept.
        assert_eq!(undo_target(&dir).unwrap(), Some((7, Model::empty())));
        // Numbers go on after the oldest archives are gone.
        assert_eq!(commit(&mut journal, &one, &Model::empty(), None), 8);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn commit_writes_the_state_with_mode_0600() {
        let dir = temp_dir("commit");
        let mut journal = Journal::open(&dir, Duration::ZERO, "test").unwrap();
        let model = Model::empty();
        let tx = journal
            .begin("cnm apply", &[], &plan_of(Vec::new()), &model, &model, None)
            .unwrap();
        journal.commit(tx, &model).unwrap();
        assert_eq!(journal.state().unwrap(), model);
        let mode = std::fs::metadata(dir.join(STATE_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(!dir.join(NEXT_STATE_FILE).exists());
        assert_eq!(
            journal
                .begin("again", &[], &plan_of(Vec::new()), &model, &model, None)
                .unwrap(),
            2
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn sandbox_model() -> Model {
        let mut model = Model::empty();
        model.sandboxes.insert(
            "A".into(),
            crate::model::Sandbox {
                name: "A".into(),
                id: "x".into(),
                mode: crate::model::Mode::None,
                hostname: None,
                dns: Vec::new(),
                status: crate::model::Status::Running,
                published: Vec::new(),
            },
        );
        model
    }

    /// A transaction committed up to its rename: the new state and the commit line
    /// reached the disk, the rename did not.
    fn cut_before_rename(dir: &Path, model: &Model) {
        let mut journal = Journal::open(dir, Duration::ZERO, "test").unwrap();
        let tx = journal
            .begin("cnm apply", &[], &one_step(), &Model::empty(), model, None)
            .unwrap();
        let json = state::to_json(model);
        std::fs::write(dir.join(NEXT_STATE_FILE), &json).unwrap();
        journal
            .append(
                &Record::Commit {
                    tx,
                    time: now(),
                    state_sha256: Some(sha256(json.as_bytes())),
                },
                true,
            )
            .unwrap();
    }

    #[test]
    fn a_commit_cut_short_is_finished_on_open_and_read_by_those_locked_out() {
        let dir = temp_dir("cut");
        let model = sandbox_model();
        cut_before_rename(&dir, &model);
        // Whoever cannot take the lock reads the committed state, and writes nothing.
        let look = look(&dir).unwrap();
        assert!(look.next && look.open.is_none() && !look.torn, "{look:?}");
        assert_eq!(committed_next(&dir), Some(model.clone()));
        assert_eq!(state::load(&dir).unwrap(), Model::empty());
        let mut journal = Journal::open(&dir, Duration::ZERO, "test").unwrap();
        assert_eq!(journal.state().unwrap(), model);
        let notices = journal.take_notices();
        assert!(notices[0].contains("transaction 1 was committed"), "{notices:?}");
        assert_eq!(committed_next(&dir), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_state_file_no_commit_vouches_for_is_removed_never_read() {
        let dir = temp_dir("planted");
        let mut journal = Journal::open(&dir, Duration::ZERO, "test").unwrap();
        commit(&mut journal, &Model::empty(), &model_named("one"), None);
        drop(journal);
        std::fs::write(dir.join(NEXT_STATE_FILE), state::to_json(&sandbox_model())).unwrap();
        assert_eq!(committed_next(&dir), None);
        let mut journal = Journal::open(&dir, Duration::ZERO, "test").unwrap();
        assert_eq!(journal.state().unwrap(), model_named("one"));
        assert!(!dir.join(NEXT_STATE_FILE).exists());
        assert!(journal.take_notices()[0].contains("which no commit in the journal vouches for"));

        // A link planted as the next state is not written through.
        let target = dir.join("target");
        std::fs::write(&target, "keep").unwrap();
        std::os::unix::fs::symlink(&target, dir.join(NEXT_STATE_FILE)).unwrap();
        commit(&mut journal, &model_named("one"), &model_named("two"), None);
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep");
        assert_eq!(journal.state().unwrap(), model_named("two"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_torn_last_line_is_set_aside_removed_and_said_once() {
        let dir = temp_dir("torn");
        let mut journal = Journal::open(&dir, Duration::ZERO, "test").unwrap();
        commit(&mut journal, &Model::empty(), &model_named("one"), None);
        let tx = journal
            .begin(
                "apply",
                &[],
                &one_step(),
                &model_named("one"),
                &model_named("two"),
                None,
            )
            .unwrap();
        journal.step_done(tx, 0).unwrap();
        drop(journal);
        let whole = std::fs::read(dir.join(JOURNAL_FILE)).unwrap();
        let torn = b"{\"type\":\"commit\",\"tx\":2,\"ti";
        std::fs::write(dir.join(JOURNAL_FILE), [&whole[..], torn].concat()).unwrap();
        // Commands that cannot take the lock see it and read around it.
        assert!(look(&dir).unwrap().torn);
        assert_eq!(read_records(&dir).unwrap().len(), 4);
        assert_eq!(history(&dir, None).unwrap().0.len(), 2);

        let mut journal = Journal::open(&dir, Duration::ZERO, "test").unwrap();
        let notices = journal.take_notices();
        assert_eq!(notices.len(), 1, "{notices:?}");
        assert!(
            notices[0].contains("ended in a line cut short (27 bytes, left by a crash or a full disk)"),
            "{notices:?}"
        );
        assert!(notices[0].contains("transaction 2 was under way"), "{notices:?}");
        assert_eq!(std::fs::read(dir.join(JOURNAL_FILE)).unwrap(), whole);
        let copies: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("journal.jsonl.torn-"))
            .collect();
        assert_eq!(copies.len(), 1);
        assert_eq!(std::fs::read(copies[0].path()).unwrap(), torn);
        assert_eq!(
            journal.open_transaction().unwrap().map(|o| (o.tx, o.done)),
            Some((2, 1))
        );
        drop(journal);
        let mut journal = Journal::open(&dir, Duration::ZERO, "test").unwrap();
        assert!(journal.take_notices().is_empty(), "said once");

        // A last line with its newline that does not parse is torn just the same.
        drop(journal);
        std::fs::write(dir.join(JOURNAL_FILE), [&whole[..], b"{\"type\":\n"].concat()).unwrap();
        let journal = Journal::open(&dir, Duration::ZERO, "test").unwrap();
        assert_eq!(std::fs::read(dir.join(JOURNAL_FILE)).unwrap(), whole);
        drop(journal);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_second_cnm_waits_then_names_the_holder() {
        let dir = temp_dir("lock");
        let _first = Journal::open(&dir, Duration::ZERO, "cnm apply seed.cnm").unwrap();
        let mut told = Vec::new();
        let err = Journal::open_waiting(&dir, Duration::from_millis(120), "cnm show", |holder| {
            told.push(holder.to_string())
        })
        .err()
        .unwrap();
        // Told once, at once, who holds it.
        assert_eq!(told.len(), 1);
        assert!(
            told[0].starts_with(&format!("pid {}: cnm apply seed.cnm, since ", std::process::id())),
            "{told:?}"
        );
        let text = err.to_string();
        assert!(
            text.contains(&format!("pid {}: cnm apply seed.cnm", std::process::id())),
            "{text}"
        );
        assert!(text.contains("gave up after waiting"), "{text}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_corrupt_journal_names_its_line_and_is_left_alone_until_rebuilt() {
        let dir = temp_dir("corrupt");
        let mut journal = Journal::open(&dir, Duration::ZERO, "test").unwrap();
        commit(&mut journal, &Model::empty(), &model_named("one"), None);
        commit(&mut journal, &model_named("one"), &model_named("two"), None);
        drop(journal);
        let whole = std::fs::read_to_string(dir.join(JOURNAL_FILE)).unwrap();
        let mut lines: Vec<&str> = whole.lines().collect();
        lines[1] = "not json";
        let text = lines.join("\n") + "\n";
        std::fs::write(dir.join(JOURNAL_FILE), &text).unwrap();
        std::fs::write(dir.join(STATE_FILE), "{").unwrap();
        let mut journal = Journal::open(&dir, Duration::ZERO, "test").unwrap();
        let err = journal.records().unwrap_err().to_string();
        assert!(err.contains("journal.jsonl is corrupt at line 2"), "{err}");
        assert!(err.contains("cnm recover --from-journal"), "{err}");
        assert_eq!(std::fs::read_to_string(dir.join(JOURNAL_FILE)).unwrap(), text);

        let rebuilt = journal.rebuild_state().unwrap();
        assert_eq!(rebuilt.dropped, [2]);
        assert!(rebuilt.from.contains("transaction 2"), "{}", rebuilt.from);
        assert_eq!(journal.state().unwrap(), model_named("two"));
        assert_eq!(std::fs::read_to_string(rebuilt.kept.unwrap()).unwrap(), text);
        assert_eq!(std::fs::read_to_string(rebuilt.replaced.unwrap()).unwrap(), "{");
        assert_eq!(journal.records().unwrap().len(), 3);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Every reader of the journal takes a line it cannot read for the end a crash cut
    /// short when only blanks follow it, and for corruption anywhere else.
    #[test]
    fn every_reader_tells_a_torn_end_from_corruption_alike() {
        let dir = temp_dir("readers");
        let mut journal = Journal::open(&dir, Duration::ZERO, "test").unwrap();
        commit(&mut journal, &Model::empty(), &model_named("one"), None);
        drop(journal);
        let whole = std::fs::read_to_string(dir.join(JOURNAL_FILE)).unwrap();
        let torn = format!("{whole}{{\"type\":\"beg\n  \n");
        let corrupt = format!("{{\"type\n{whole}");
        for (text, is_corrupt) in [(torn, false), (corrupt, true)] {
            std::fs::write(dir.join(JOURNAL_FILE), &text).unwrap();
            let read = [
                ("history", history(&dir, None).map(|_| ())),
                ("read_records", read_records(&dir).map(|_| ())),
                ("undo_target", undo_target(&dir).map(|_| ())),
            ];
            for (reader, result) in read {
                match result {
                    Ok(()) => assert!(!is_corrupt, "{reader} read a corrupt journal"),
                    Err(error) => {
                        assert!(is_corrupt, "{reader}: {error}");
                        assert!(
                            error.to_string().contains("corrupt at line 1"),
                            "{reader}: {error}"
                        );
                    }
                }
            }
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_state_dir_that_is_a_file_is_a_clear_error() {
        let dir = temp_dir("file");
        std::fs::write(&dir, "").unwrap();
        let err = Journal::open(&dir, Duration::ZERO, "test")
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.starts_with(&format!("cannot use the state directory {}", dir.display())),
            "{err}"
        );
        std::fs::remove_file(&dir).unwrap();
    }

    #[test]
    fn links_in_the_state_directory_are_not_followed() {
        let dir = temp_dir("links");
        let outside = temp_dir("links-outside");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        for name in [LOCK_FILE, JOURNAL_FILE] {
            let target = outside.join(name);
            std::fs::write(&target, "keep\n").unwrap();
            std::os::unix::fs::symlink(&target, dir.join(name)).unwrap();
            let err = Journal::open(&dir, Duration::ZERO, "test")
                .err()
                .unwrap()
                .to_string();
            assert_eq!(
                err,
                format!(
                    "cannot use {}: it is a symbolic link, which cnm does not follow in its state directory",
                    dir.join(name).display()
                )
            );
            assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep\n");
            std::fs::remove_file(dir.join(name)).unwrap();
        }
        // Nor is a state directory that is a link.
        let link = temp_dir("links-dir");
        std::os::unix::fs::symlink(&dir, &link).unwrap();
        let err = Journal::open(&link, Duration::ZERO, "test")
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("it is a symbolic link"), "{err}");
        assert!(look(&link).is_err());
        std::fs::remove_file(&link).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        std::fs::remove_dir_all(&outside).unwrap();
    }
}

//! The journal, in the state directory: `state.json` (the committed model), and
//! `journal.jsonl`, an append-only record of every transaction — `begin` with its plan,
//! `step` for each operation done, then `commit`, `rolled-back` or `recovered`. An
//! exclusive lock (`lock`) keeps two cnm processes from interleaving.
//!
//! Crash safety: `begin` reaches the disk before the first kernel operation. A commit
//! writes the new state beside the old (`state.json.next`), appends `commit`, then
//! renames: the `commit` line decides whether a crash left the new state or the old one.
//! `step` lines are not synced one by one — a killed process loses nothing the kernel
//! page cache holds, and undoing is idempotent, so a step whose line was lost is undone
//! all the same.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use crate::io_reason::io_reason;
use crate::model::Model;
use crate::plan::{Op, Plan};
use crate::state::{self, StateError, STATE_FILE};

pub const JOURNAL_FILE: &str = "journal.jsonl";
const LOCK_FILE: &str = "lock";
const NEXT_STATE_FILE: &str = "state.json.next";

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
}

/// A planned operation as the journal keeps it: enough to undo it after a crash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalStep {
    pub op: Op,
    pub undo: Vec<Op>,
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
                undo: s.undo.clone(),
                cause: None,
            })
            .collect()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("cannot use the state directory {dir}: {reason}")]
    Directory { dir: PathBuf, reason: String },
    #[error("another cnm holds the lock on {dir} ({holder}); gave up after waiting {waited}s (see --lock-timeout)")]
    Locked {
        dir: PathBuf,
        holder: String,
        waited: u64,
    },
    #[error("{path} is corrupt at line {line}: {reason}; cnm leaves it as it is — move it aside to start a new history")]
    Corrupt {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    #[error("cannot write {path}: {reason}")]
    Write { path: PathBuf, reason: String },
    #[error(transparent)]
    State(#[from] StateError),
}

/// The state directory, locked for as long as this value lives.
pub struct Journal {
    dir: PathBuf,
    _lock: Flock<File>,
    log: File,
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
        _ => io_reason(error),
    }
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
        let directory_error = |e: std::io::Error| JournalError::Directory {
            dir: dir.to_path_buf(),
            reason: reason(&e),
        };
        std::fs::create_dir_all(dir).map_err(directory_error)?;
        if !dir.is_dir() {
            return Err(JournalError::Directory {
                dir: dir.to_path_buf(),
                reason: "it is not a directory".into(),
            });
        }
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(dir.join(LOCK_FILE))
            .map_err(directory_error)?;
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
                            .and_then(|()| (&file).read_to_string(&mut holder));
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
                Err((_, errno)) => return Err(directory_error(std::io::Error::from(errno))),
            }
        };
        // Tell whoever waits who holds the lock.
        let holder = format!("pid {}: {who}, since {}", std::process::id(), now());
        let _ = lock
            .set_len(0)
            .and_then(|()| (&*lock).write_all(holder.as_bytes()));
        let log = OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(dir.join(JOURNAL_FILE))
            .map_err(directory_error)?;
        let journal = Journal {
            dir: dir.to_path_buf(),
            _lock: lock,
            log,
        };
        journal.finish_interrupted_commit()?;
        Ok(journal)
    }

    /// A commit whose `commit` line reached the journal but whose rename did not happen
    /// is finished; a new state whose `commit` never came is dropped.
    fn finish_interrupted_commit(&self) -> Result<(), JournalError> {
        let next = self.dir.join(NEXT_STATE_FILE);
        if !next.exists() {
            return Ok(());
        }
        let committed = matches!(read_records(&self.dir)?.last(), Some(Record::Commit { .. }));
        let result = if committed {
            std::fs::rename(&next, self.dir.join(STATE_FILE)).and_then(|()| sync_dir(&self.dir))
        } else {
            std::fs::remove_file(&next)
        };
        result.map_err(|e| JournalError::Write {
            path: next,
            reason: reason(&e),
        })
    }

    pub fn state(&self) -> Result<Model, JournalError> {
        Ok(state::load(&self.dir)?)
    }

    pub fn records(&self) -> Result<Vec<Record>, JournalError> {
        read_records(&self.dir)
    }

    /// The transaction that began and never ended, if there is one.
    pub fn open_transaction(&self) -> Result<Option<OpenTransaction>, JournalError> {
        Ok(open_transaction(&self.records()?))
    }

    fn append(&mut self, record: &Record, sync: bool) -> Result<(), JournalError> {
        let mut line = serde_json::to_string(record).expect("a record serialises");
        line.push('\n');
        let path = self.dir.join(JOURNAL_FILE);
        self.log
            .write_all(line.as_bytes())
            .and_then(|()| if sync { self.log.sync_data() } else { Ok(()) })
            .map_err(|e| JournalError::Write {
                path,
                reason: reason(&e),
            })
    }

    /// Records a transaction's plan and the model before it, on disk, before anything is
    /// done. `undoes` names the transaction it undoes, if it is an undo.
    pub fn begin(
        &mut self,
        command: &str,
        sources: &[String],
        plan: &Plan,
        before: &Model,
        undoes: Option<u64>,
    ) -> Result<u64, JournalError> {
        let tx = self.records()?.last().map_or(1, |r| r.tx() + 1);
        let steps = plan
            .steps
            .iter()
            .map(|s| JournalStep {
                op: s.op.clone(),
                undo: s.undo.clone(),
            })
            .collect();
        let record = Record::Begin {
            tx,
            time: now(),
            command: command.to_string(),
            sources: sources.to_vec(),
            steps,
            before: Some(Box::new(before.clone())),
            undoes,
        };
        self.append(&record, true)?;
        Ok(tx)
    }

    pub fn step_done(&mut self, tx: u64, index: usize) -> Result<(), JournalError> {
        self.append(&Record::Step { tx, index }, false)
    }

    /// Makes `model` the committed state.
    pub fn commit(&mut self, tx: u64, model: &Model) -> Result<(), JournalError> {
        let next = self.dir.join(NEXT_STATE_FILE);
        write_synced(&next, state::to_json(model).as_bytes()).map_err(|e| JournalError::Write {
            path: next.clone(),
            reason: reason(&e),
        })?;
        self.append(&Record::Commit { tx, time: now() }, true)?;
        std::fs::rename(&next, self.dir.join(STATE_FILE))
            .and_then(|()| sync_dir(&self.dir))
            .map_err(|e| JournalError::Write {
                path: self.dir.join(STATE_FILE),
                reason: reason(&e),
            })
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
        self.append(&record, true)
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
        )
    }
}

/// Every record of the journal in `dir`; none if there is no journal yet.
pub fn read_records(dir: &Path) -> Result<Vec<Record>, JournalError> {
    let path = dir.join(JOURNAL_FILE);
    let file = match File::open(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(JournalError::Directory {
                dir: dir.to_path_buf(),
                reason: reason(&e),
            })
        }
    };
    let mut records = Vec::new();
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let corrupt = |reason: String| JournalError::Corrupt {
            path: path.clone(),
            line: i + 1,
            reason,
        };
        let line = line.map_err(|e| corrupt(io_reason(&e)))?;
        if line.trim().is_empty() {
            continue;
        }
        records.push(serde_json::from_str(&line).map_err(|e| corrupt(e.to_string()))?);
    }
    Ok(records)
}

/// The transaction `undo` takes back: the last committed one that is not an undo and
/// was not undone since (undoing twice goes back two), with the model before it.
/// `None` when there is nothing left to undo.
pub fn undo_target(records: &[Record]) -> Result<Option<(u64, Model)>, String> {
    let committed: std::collections::HashSet<u64> = records
        .iter()
        .filter_map(|r| match r {
            Record::Commit { tx, .. } => Some(*tx),
            _ => None,
        })
        .collect();
    // Committed transactions as a stack: an undo pops the one it undid.
    let mut stack: Vec<(u64, Option<&Model>)> = Vec::new();
    for record in records {
        let Record::Begin {
            tx, before, undoes, ..
        } = record
        else {
            continue;
        };
        if !committed.contains(tx) {
            continue;
        }
        match undoes {
            Some(undone) => stack.retain(|(t, _)| t != undone),
            None => stack.push((*tx, before.as_deref())),
        }
    }
    match stack.pop() {
        None => Ok(None),
        Some((tx, Some(before))) => Ok(Some((tx, before.clone()))),
        Some((tx, None)) => Err(format!(
            "transaction {tx} was recorded by an older cnm, without the state before it; it cannot be undone"
        )),
    }
}

/// The last transaction, if it began and never ended.
pub fn open_transaction(records: &[Record]) -> Option<OpenTransaction> {
    let begin = records.iter().rposition(|r| matches!(r, Record::Begin { .. }))?;
    let Record::Begin {
        tx, command, steps, ..
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
                return None
            }
            _ => {}
        }
    }
    Some(OpenTransaction {
        tx: *tx,
        command: command.clone(),
        steps: steps.clone(),
        done,
        pending,
    })
}

/// Writes a file and syncs it to disk, mode 0600.
fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    file.write_all(bytes)?;
    file.sync_all()
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

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
                    undo: vec![op.inverse()],
                    op,
                    cause: None,
                })
                .collect(),
        }
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
            .begin("cnm apply", &["a.cnm".into()], &plan, &Model::empty(), None)
            .unwrap();
        journal.step_done(tx, 0).unwrap();
        let open = journal.open_transaction().unwrap().unwrap();
        assert_eq!((open.tx, open.done), (1, 1));
        assert_eq!(open.pending, None);
        assert_eq!(
            open.plan_steps()[2].undo,
            vec![Op::DelNetns {
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

    #[test]
    fn undo_takes_back_the_last_transaction_not_yet_taken_back() {
        let dir = temp_dir("undo");
        let mut journal = Journal::open(&dir, Duration::ZERO, "test").unwrap();
        let plan = plan_of(vec![Op::AddNetns { netns: "A".into() }]);
        assert_eq!(undo_target(&journal.records().unwrap()), Ok(None));
        let (one, two) = (model_named("one"), model_named("two"));
        let t1 = journal.begin("apply", &[], &plan, &Model::empty(), None).unwrap();
        journal.commit(t1, &one).unwrap();
        let t2 = journal.begin("apply", &[], &plan, &one, None).unwrap();
        journal.commit(t2, &two).unwrap();
        // A transaction rolled back changed nothing: it is not a candidate.
        let t3 = journal.begin("apply", &[], &plan, &two, None).unwrap();
        journal.rolled_back(t3, "refused", 0, Vec::new()).unwrap();
        assert_eq!(
            undo_target(&journal.records().unwrap()),
            Ok(Some((t2, one.clone())))
        );
        let u2 = journal.begin("undo", &[], &plan, &two, Some(t2)).unwrap();
        journal.commit(u2, &one).unwrap();
        // Undoing again goes back one more, not forward again.
        assert_eq!(
            undo_target(&journal.records().unwrap()),
            Ok(Some((t1, Model::empty())))
        );
        let u1 = journal.begin("undo", &[], &plan, &one, Some(t1)).unwrap();
        journal.commit(u1, &Model::empty()).unwrap();
        assert_eq!(undo_target(&journal.records().unwrap()), Ok(None));
        std::fs::remove_dir_all(&dir).unwrap();

        // A journal from before cnm kept the state: said, not guessed.
        let old = vec![
            Record::Begin {
                tx: 1,
                time: "t".into(),
                command: "apply".into(),
                sources: Vec::new(),
                steps: Vec::new(),
                before: None,
                undoes: None,
            },
            Record::Commit {
                tx: 1,
                time: "t".into(),
            },
        ];
        assert!(undo_target(&old).unwrap_err().contains("older cnm"));
    }

    #[test]
    fn commit_writes_the_state_with_mode_0600() {
        let dir = temp_dir("commit");
        let mut journal = Journal::open(&dir, Duration::ZERO, "test").unwrap();
        let tx = journal
            .begin("cnm apply", &[], &plan_of(Vec::new()), &Model::empty(), None)
            .unwrap();
        let model = Model::empty();
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
                .begin("again", &[], &plan_of(Vec::new()), &Model::empty(), None)
                .unwrap(),
            2
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_commit_cut_short_is_finished_on_open() {
        let dir = temp_dir("cut");
        let mut journal = Journal::open(&dir, Duration::ZERO, "test").unwrap();
        let tx = journal
            .begin("cnm apply", &[], &plan_of(Vec::new()), &Model::empty(), None)
            .unwrap();
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
        // The new state and the commit line reached the disk; the rename did not.
        write_synced(&dir.join(NEXT_STATE_FILE), state::to_json(&model).as_bytes()).unwrap();
        journal.append(&Record::Commit { tx, time: now() }, true).unwrap();
        drop(journal);
        let journal = Journal::open(&dir, Duration::ZERO, "test").unwrap();
        assert_eq!(journal.state().unwrap(), model);
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
    fn a_corrupt_journal_names_its_line_and_is_left_alone() {
        let dir = temp_dir("corrupt");
        std::fs::create_dir_all(&dir).unwrap();
        let text = "{\"type\":\"commit\",\"tx\":1,\"time\":\"t\"}\nnot json\n";
        std::fs::write(dir.join(JOURNAL_FILE), text).unwrap();
        let journal = Journal::open(&dir, Duration::ZERO, "test").unwrap();
        let err = journal.records().unwrap_err().to_string();
        assert!(err.contains("journal.jsonl is corrupt at line 2"), "{err}");
        assert_eq!(std::fs::read_to_string(dir.join(JOURNAL_FILE)).unwrap(), text);
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
}

//! The executor: applies a plan through a [`Backend`] as one transaction. On the first
//! failure — or when asked to stop (Ctrl-C, SIGTERM) — it runs the undo lists of the
//! completed steps, last first, keeping going past errors, and reports what it undid and
//! what the kernel refused to undo.
//!
//! Two kernel facts shape it. A deleted namespace's veths are removed in the background,
//! so a name they held is waited for before anything makes it again (forward or while
//! undoing). And a request that got no answer may have taken effect: such a step is
//! first made definite — a deletion is finished, a creation is undone like a done step.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::backend::{Backend, FileWriter, KernelError};
use crate::plan::{EtcFile, Name, Op, Plan, Step};

/// Why a transaction did not complete.
#[derive(Debug)]
pub enum Stop {
    /// Step `index` (0-based) was refused.
    Failed { index: usize, error: KernelError },
    /// Asked to stop before step `index`.
    Interrupted { index: usize },
    /// The journal could not record step `index`.
    Journal { index: usize, error: String },
}

/// What rolling back did: how many steps it undid, and the undo operations the kernel
/// refused, in the order they ran — what may be left behind; and how long it took,
/// waiting for the kernel to remove the veths included.
#[derive(Debug, Default)]
pub struct Undone {
    pub steps: usize,
    pub refused: Vec<(Op, KernelError)>,
    pub took: Duration,
}

impl Undone {
    pub fn is_complete(&self) -> bool {
        self.refused.is_empty()
    }

    /// Each refused operation in iproute2's words (its files under `etc_dir`), and why.
    pub fn error_lines(&self, etc_dir: &std::path::Path) -> Vec<String> {
        self.refused
            .iter()
            .map(|(op, e)| format!("{}: {e}", op.command(etc_dir)))
            .collect()
    }

    /// The refused operations, to run again later, in order.
    pub fn pending(&self) -> Vec<Op> {
        self.refused.iter().map(|(op, _)| op.clone()).collect()
    }
}

/// Told about each step as it starts, for progress display.
pub trait Progress {
    fn step(&mut self, index: usize, total: usize, op: &Op);
    fn finish(&mut self);
}

/// Host links of veths whose namespace this transaction deleted: the kernel removes them
/// in the background, and their names are taken until it has.
#[derive(Debug, Default)]
struct Vanishing(Vec<Name>);

impl Vanishing {
    fn after(&mut self, op: &Op) {
        if let Op::DelNetns { links, .. } = op {
            self.0.extend(links.iter().cloned());
        }
    }

    /// Waits for the name `op` is about to create, if a deleted namespace's veth held it.
    fn before(&mut self, op: &Op, backend: &mut dyn Backend) -> Result<(), KernelError> {
        let Op::AddVeth { link, .. } = op else {
            return Ok(());
        };
        match self.0.iter().position(|l| l == link) {
            Some(at) => backend.settle(&[self.0.remove(at)]),
            None => Ok(()),
        }
    }

    fn settle(&mut self, backend: &mut dyn Backend) -> Result<(), KernelError> {
        backend.settle(&std::mem::take(&mut self.0))
    }
}

/// Applies every step; `done(i)` records step `i` as done (in the journal). On failure
/// the completed steps are undone before this returns.
///
/// The transaction's file writes run ahead of their turn on a thread of their own, if
/// the backend can (see [`ahead_of_turn`]), while the kernel works on namespaces and
/// links. A sandbox's directory and hosts file are two new inodes, and a filesystem
/// that has just deleted many (ext4 without a journal skips recently deleted inodes, one
/// by one) takes up to a millisecond for them: a third of an apply after a destroy.
/// Each write still counts in its turn: the executor waits for its outcome there, and
/// records it done then. What was written ahead of a failure is undone with the rest.
pub fn apply(
    plan: &Plan,
    backend: &mut dyn Backend,
    progress: &mut dyn Progress,
    stop: &AtomicBool,
    done: &mut dyn FnMut(usize) -> Result<(), String>,
) -> Result<(), (Stop, Undone)> {
    let ahead = ahead_of_turn(&plan.steps);
    let writer = if ahead.is_empty() {
        None
    } else {
        backend.file_writer()
    };
    let namespaces = plan
        .steps
        .iter()
        .filter(|s| matches!(s.op, Op::AddNetns { .. }))
        .count();
    backend.begin_transaction(namespaces);
    let result = std::thread::scope(|scope| {
        let mut ahead = Ahead::start(scope, &plan.steps, ahead, writer);
        let result = apply_steps(plan, backend, progress, stop, done, &mut ahead);
        ahead.finish();
        result
    });
    backend.end_transaction();
    result
}

fn apply_steps(
    plan: &Plan,
    backend: &mut dyn Backend,
    progress: &mut dyn Progress,
    stop: &AtomicBool,
    done: &mut dyn FnMut(usize) -> Result<(), String>,
    ahead: &mut Ahead,
) -> Result<(), (Stop, Undone)> {
    let total = plan.steps.len();
    let mut vanishing = Vanishing::default();
    let mut index = 0;
    while index < total {
        if stop.load(Ordering::SeqCst) {
            progress.finish();
            let undone = roll_back_to(plan, index, ahead, &mut vanishing, backend);
            return Err((Stop::Interrupted { index }, undone));
        }
        // Firewall steps that follow each other go to the kernel as one batch.
        let batch = firewall_run(&plan.steps[index..]);
        let end = index + batch.max(1);
        for (at, step) in plan.steps[index..end].iter().enumerate() {
            progress.step(index + at, total, &step.op);
        }
        let step = &plan.steps[index];
        let applied = if batch > 0 {
            let ops: Vec<Op> = plan.steps[index..end].iter().map(|s| s.op.clone()).collect();
            backend.firewall(&ops)
        } else if let Some(written) = ahead.outcome(index) {
            written
        } else {
            vanishing
                .before(&step.op, backend)
                .and_then(|()| backend.apply(&step.op))
        };
        if let Err(error) = applied {
            progress.finish();
            let reached = if error.effect_unknown && make_definite(&step.op, backend) {
                vanishing.after(&step.op);
                end
            } else {
                index
            };
            let undone = roll_back_to(plan, reached, ahead, &mut vanishing, backend);
            return Err((Stop::Failed { index, error }, undone));
        }
        vanishing.after(&step.op);
        for at in index..end {
            if let Err(error) = done(at) {
                progress.finish();
                let undone = roll_back_to(plan, end, ahead, &mut vanishing, backend);
                return Err((Stop::Journal { index: at, error }, undone));
            }
        }
        index = end;
    }
    progress.finish();
    // The next transaction may need the names again; the files must be on disk before
    // the transaction commits.
    vanishing
        .settle(backend)
        .and_then(|()| backend.sync_files())
        .map_err(|error| {
            let index = total.saturating_sub(1);
            let undone = roll_back_to(plan, total, ahead, &mut Vanishing::default(), backend);
            (Stop::Failed { index, error }, undone)
        })
}

/// Undoes steps `..reached`, and those performed ahead of their turn after them.
fn roll_back_to(
    plan: &Plan,
    reached: usize,
    ahead: &mut Ahead,
    vanishing: &mut Vanishing,
    backend: &mut dyn Backend,
) -> Undone {
    let steps = with_ahead(&plan.steps, reached, ahead.finish());
    roll_back(&steps, vanishing, backend)
}

/// The steps `..reached`, then those of `ahead` (performed ahead of their turn, in
/// order) that come after them.
fn with_ahead(steps: &[Step], reached: usize, ahead: Vec<usize>) -> Vec<&Step> {
    let later = ahead.into_iter().filter(|&i| i >= reached);
    steps[..reached].iter().chain(later.map(|i| &steps[i])).collect()
}

/// The steps that may run ahead of their turn: file writes, each of a file that no
/// other step of the plan writes or removes, in a sandbox's directory that no step
/// removes a file from (removing the last file removes the directory, which would race
/// with a write into it). A file does not depend on any kernel object, and undoing one
/// is idempotent (a removal of what is not there, or the old content written again), so
/// recovery can undo such a step whether it ran or not.
fn ahead_of_turn(steps: &[Step]) -> Vec<usize> {
    let mut uses: HashMap<(&str, EtcFile), usize> = HashMap::new();
    let mut emptied: HashSet<&str> = HashSet::new();
    for step in steps {
        if let Op::WriteFile { netns, file, .. } | Op::RemoveFile { netns, file } = &step.op {
            *uses.entry((netns, *file)).or_default() += 1;
        }
        if let Op::RemoveFile { netns, .. } = &step.op {
            emptied.insert(netns);
        }
    }
    let once = |op: &Op| {
        matches!(op, Op::WriteFile { netns, file, .. }
            if uses[&(&**netns, *file)] == 1 && !emptied.contains(&**netns))
    };
    (0..steps.len()).filter(|&i| once(&steps[i].op)).collect()
}

/// The thread that performs the steps [`ahead_of_turn`], in order, and what it did.
struct Ahead {
    outcomes: Option<Receiver<(usize, Result<(), KernelError>)>>,
    /// The steps whose outcome is still to take, in order.
    pending: VecDeque<usize>,
    stop: Arc<AtomicBool>,
}

impl Ahead {
    fn start<'s>(
        scope: &'s std::thread::Scope<'s, '_>,
        steps: &'s [Step],
        ahead: Vec<usize>,
        writer: Option<FileWriter>,
    ) -> Ahead {
        let stop = Arc::new(AtomicBool::new(false));
        let Some(mut writer) = writer else {
            return Ahead {
                outcomes: None,
                pending: VecDeque::new(),
                stop,
            };
        };
        let (send, outcomes) = std::sync::mpsc::channel();
        let stopped = Arc::clone(&stop);
        let pending = VecDeque::from(ahead.clone());
        scope.spawn(move || {
            for index in ahead {
                if stopped.load(Ordering::SeqCst) {
                    break;
                }
                let outcome = writer(&steps[index].op);
                let failed = outcome.is_err();
                if send.send((index, outcome)).is_err() || failed {
                    break;
                }
            }
        });
        Ahead {
            outcomes: Some(outcomes),
            pending,
            stop,
        }
    }

    /// How step `index` went, if the thread performed it. `None`: it is not a step
    /// ahead of its turn, or the thread stopped before it; the step is performed now.
    fn outcome(&mut self, index: usize) -> Option<Result<(), KernelError>> {
        let outcomes = self.outcomes.as_ref()?;
        if self.pending.front() != Some(&index) {
            return None;
        }
        self.pending.pop_front();
        // Outcomes come in the order of the steps, and steps are taken in that order.
        match outcomes.recv() {
            Ok((at, outcome)) if at == index => Some(outcome),
            Ok((at, _)) => unreachable!("the outcome of step {at} came at step {index}"),
            Err(_) => None,
        }
    }

    /// Stops the thread and waits for it; returns the steps it performed whose outcome
    /// was not taken yet (a failed write left nothing).
    fn finish(&mut self) -> Vec<usize> {
        self.stop.store(true, Ordering::SeqCst);
        let Some(outcomes) = self.outcomes.take() else {
            return Vec::new();
        };
        outcomes
            .iter()
            .filter_map(|(index, outcome)| outcome.is_ok().then_some(index))
            .collect()
    }
}

/// How many firewall steps `steps` starts with.
fn firewall_run(steps: &[Step]) -> usize {
    steps.iter().take_while(|s| s.op.is_firewall()).count()
}

/// Whether an operation that may or may not have taken effect now counts as done.
/// A deletion is finished (deleting is idempotent) and then undone like a done step; a
/// creation's undo deletes, which is harmless if it never happened. A firewall batch
/// counts as done whole: every firewall operation may run twice.
fn make_definite(op: &Op, backend: &mut dyn Backend) -> bool {
    op.is_firewall() || !op.is_deletion() || backend.apply(op).is_ok()
}

/// Undoes `steps`, last first, once the names their undo lists make again are free.
/// What deleting a namespace later in the rollback takes along anyway is not undone one
/// by one (see [`spared`]); the host ends of its veths are waited for at the end.
fn roll_back(steps: &[&Step], vanishing: &mut Vanishing, backend: &mut dyn Backend) -> Undone {
    let started = Instant::now();
    // A name still held makes its recreation fail, and that refusal is reported below.
    let _ = vanishing.settle(backend);
    let (lists, vanished) = spared(steps);
    let mut undone = undo(lists.iter().map(Vec::as_slice), backend);
    if let Err(error) = backend.settle(&vanished) {
        let left = vanished.into_iter().map(|link| Op::DelLink { netns: None, link });
        undone.refused.extend(left.map(|op| (op, error.clone())));
    }
    undone.took = started.elapsed();
    undone
}

/// The undo lists of `steps`, last first, without the operations on a namespace's
/// interfaces (and on the host ends of its veths) that come before the namespace's own
/// deletion: it takes them along, in one background cleanup, where deleting a veth on
/// its own costs the kernel a grace period (about 19 ms each: a rollback of 500
/// sandboxes took 10 s). Also the host ends of the veths so left to the kernel, whose
/// names stay taken until it has removed them.
fn spared(steps: &[&Step]) -> (Vec<Vec<Op>>, Vec<Name>) {
    let veth_netns: HashMap<&str, &str> = steps
        .iter()
        .filter_map(|s| match &s.op {
            Op::AddVeth { link, netns, .. } => Some((&**link, &**netns)),
            _ => None,
        })
        .collect();
    // The namespace whose deletion takes an undo operation's object along, and whether
    // the operation deletes a veth's host end.
    fn in_netns<'o>(op: &'o Op, veth_netns: &HashMap<&'o str, &'o str>) -> Option<(&'o str, bool)> {
        let host_end = |link: &str| veth_netns.get(link).copied();
        match op {
            Op::DelLink { netns: None, link } => host_end(link).map(|netns| (netns, true)),
            Op::NoMaster { link } | Op::LinkDown { netns: None, link } => {
                host_end(link).map(|netns| (netns, false))
            }
            Op::DelLink {
                netns: Some(netns), ..
            }
            | Op::LinkDown {
                netns: Some(netns), ..
            }
            | Op::DelAddress {
                netns: Some(netns), ..
            }
            | Op::DelRoute { netns, .. } => Some((&**netns, false)),
            _ => None,
        }
    }
    let undos: Vec<_> = steps.iter().rev().map(|s| s.undo_ops()).collect();
    // Where, in the order of undoing, each namespace is last deleted.
    let mut deleted: HashMap<&str, usize> = HashMap::new();
    for (at, op) in undos.iter().flat_map(|ops| ops.iter()).enumerate() {
        if let Op::DelNetns { netns, .. } = op {
            deleted.insert(netns, at);
        }
    }
    let mut vanished = Vec::new();
    let mut at = 0;
    let mut lists = Vec::with_capacity(steps.len());
    for ops in &undos {
        let mut list = Vec::with_capacity(ops.len());
        for op in ops.iter() {
            match in_netns(op, &veth_netns) {
                Some((netns, host_end)) if deleted.get(netns).is_some_and(|&d| d > at) => {
                    if let (true, Op::DelLink { link, .. }) = (host_end, op) {
                        vanished.push(link.clone());
                    }
                }
                _ => list.push(op.clone()),
            }
            at += 1;
        }
        lists.push(list);
    }
    (lists, vanished)
}

/// Rolls back a transaction that a crash cut short after `done` steps: the step that
/// may have been under way is made definite first, then everything done is undone.
pub fn recover(steps: &[Step], done: usize, backend: &mut dyn Backend) -> Undone {
    let done = done.min(steps.len());
    let reached = match steps.get(done) {
        Some(step) if make_definite(&step.op, backend) => done + firewall_run(&steps[done..]).max(1),
        _ => done,
    };
    let mut vanishing = Vanishing::default();
    for step in &steps[..reached] {
        vanishing.after(&step.op);
    }
    // With the steps that may have run ahead of their turn (undoing them is harmless if
    // they did not).
    let steps = with_ahead(steps, reached, ahead_of_turn(steps));
    roll_back(&steps, &mut vanishing, backend)
}

/// Runs undo lists in the order given, keeping going past errors. Firewall operations
/// that follow each other go as one batch, which the kernel takes or refuses whole.
pub fn undo<'a>(lists: impl Iterator<Item = &'a [Op]>, backend: &mut dyn Backend) -> Undone {
    let started = Instant::now();
    let mut undone = Undone::default();
    let mut batch = Vec::new();
    let mut files = Vec::new();
    for list in lists {
        for op in list {
            if op.is_firewall() {
                batch.push(op.clone());
                continue;
            }
            undone.send(&mut batch, backend);
            match apply_waiting(op, backend) {
                Ok(()) if matches!(op, Op::WriteFile { .. } | Op::RemoveFile { .. }) => {
                    files.push(op.clone())
                }
                Ok(()) => {}
                Err(error) => undone.refused.push((op.clone(), error)),
            }
        }
        undone.steps += 1;
    }
    undone.send(&mut batch, backend);
    // Files that may not have reached the disk count as not undone: they are written or
    // removed again with the other refused operations.
    if let Err(error) = backend.sync_files() {
        undone
            .refused
            .extend(files.into_iter().map(|op| (op, error.clone())));
    }
    undone.took = started.elapsed();
    undone
}

/// Applies an undo operation. A veth whose name is taken may be meeting the host end
/// of a namespace deleted earlier — by a process that crashed, whose list of vanishing
/// names is lost — that the kernel has not removed yet: the name is waited for (as long
/// as `settle` waits), then the veth made again. A name something else holds stays
/// refused.
fn apply_waiting(op: &Op, backend: &mut dyn Backend) -> Result<(), KernelError> {
    match (backend.apply(op), op) {
        (Err(error), Op::AddVeth { link, .. }) if error.errno == Some(libc::EEXIST) => {
            match backend.settle(std::slice::from_ref(link)) {
                Ok(()) => backend.apply(op),
                Err(_) => Err(error),
            }
        }
        (result, _) => result,
    }
}

impl Undone {
    /// Sends a batch of firewall operations, if any; all of them are refused if it is.
    fn send(&mut self, batch: &mut Vec<Op>, backend: &mut dyn Backend) {
        if batch.is_empty() {
            return;
        }
        if let Err(error) = backend.firewall(batch) {
            self.refused
                .extend(batch.iter().map(|op| (op.clone(), error.clone())));
        }
        batch.clear();
    }
}

/// A kernel refusal in words that name the object and where it lives.
pub fn describe(op: &Op, error: &KernelError) -> String {
    match (error.errno, op) {
        (Some(libc::ENODEV), _) => format!("an interface it needs is missing: {}", error.message),
        (Some(libc::ENOENT), Op::AddVeth { netns, .. } | Op::AddMacvlan { netns, .. }) => {
            format!("the namespace of sandbox {netns} is gone (deleted outside cnm?)")
        }
        (
            Some(libc::ERANGE),
            Op::AddBridge { mtu, .. } | Op::AddVeth { mtu, .. } | Op::AddMacvlan { mtu, .. },
        ) => {
            format!("the kernel refused MTU {mtu} (out of range for this device)")
        }
        (
            Some(libc::EXFULL),
            Op::SetMaster { master, .. }
            | Op::AddVeth {
                master: Some(master), ..
            },
        ) => format!(
            "bridge {master} is full: a Linux bridge holds at most {} ports",
            crate::model::BRIDGE_PORT_LIMIT
        ),
        (Some(libc::ENETUNREACH), Op::AddRoute { gateway, link, .. }) => {
            format!("gateway {gateway} is not reachable through {link}")
        }
        (Some(libc::EPERM) | Some(libc::EACCES), _) => {
            "permission denied: changing the kernel needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN); \
             run cnm as root, or try it with --isolated"
                .to_string()
        }
        _ => error.message.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::memory::MemoryBackend;
    use crate::model::Model;

    struct Quiet;
    impl Progress for Quiet {
        fn step(&mut self, _: usize, _: usize, _: &Op) {}
        fn finish(&mut self) {}
    }

    fn plan_script(path: &str, committed: &Model) -> (Model, Plan) {
        crate::plan_text(path, &std::fs::read_to_string(path).unwrap(), committed)
    }

    /// The kernel a committed model stands for, built from nothing.
    fn kernel_of(model: &Model) -> MemoryBackend {
        let mut kernel = MemoryBackend::new();
        let plan = crate::plan::between(&Model::empty(), model, &Default::default());
        let never = AtomicBool::new(false);
        apply(&plan, &mut kernel, &mut Quiet, &never, &mut |_| Ok(())).unwrap();
        kernel
    }

    /// Plans `text` (a script) against `committed`.
    fn plan_text(text: &str, committed: &Model) -> (Model, Plan) {
        crate::plan_text("test.cnm", text, committed)
    }

    /// Every example script from nothing, and a seed taken apart (stops, removals and a
    /// disconnect, so that namespaces are deleted and then made again by undoing).
    fn cases() -> Vec<(MemoryBackend, Plan)> {
        let mut scripts: Vec<_> = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        scripts.sort();
        let mut cases: Vec<(MemoryBackend, Plan)> = scripts
            .iter()
            .map(|p| {
                (
                    MemoryBackend::new(),
                    plan_script(p.to_str().unwrap(), &Model::empty()).1,
                )
            })
            .collect();
        let (seed, _) = plan_script(
            concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/seed.cnm"),
            &Model::empty(),
        );
        let teardown = "stop B\nremove sandbox A\ndisconnect C from frontend\nsandbox D\n";
        cases.push((kernel_of(&seed), plan_text(teardown, &seed).1));
        cases.push((
            kernel_of(&seed),
            crate::plan::between(&seed, &Model::empty(), &Default::default()),
        ));
        // Published ports and forwarding turned on: made, taken apart in part, destroyed.
        let (mut published, _) = plan_text(
            "publish A 8080:80\npublish B 5353:53/udp host-ip 127.0.0.1\n",
            &seed,
        );
        published.ip_forward_enabled = true;
        cases.push((
            MemoryBackend::new(),
            crate::plan::between(&Model::empty(), &published, &Default::default()),
        ));
        cases.push((kernel_of(&published), plan_text(teardown, &published).1));
        cases.push((
            kernel_of(&published),
            crate::plan::between(&published, &Model::empty(), &Default::default()),
        ));
        cases
    }

    /// The cases small enough to try every pair of positions in (not the fleet).
    fn small_cases() -> Vec<(MemoryBackend, Plan)> {
        cases()
            .into_iter()
            .filter(|(_, plan)| plan.steps.len() <= 200)
            .collect()
    }

    /// Applies with failure injected by `inject`, and checks the rollback was complete
    /// and left the kernel exactly as it was.
    fn assert_rolls_back(before: &MemoryBackend, plan: &Plan, k: usize, inject: impl Fn(&mut MemoryBackend)) {
        let never = AtomicBool::new(false);
        let mut kernel = before.clone();
        inject(&mut kernel);
        let mut recorded = Vec::new();
        let (stop, undone) = apply(plan, &mut kernel, &mut Quiet, &never, &mut |i| {
            recorded.push(i);
            Ok(())
        })
        .unwrap_err();
        assert!(
            matches!(stop, Stop::Failed { index, .. } if index == k),
            "{stop:?}"
        );
        assert!(undone.is_complete(), "step {k}: {:?}", undone.refused);
        assert_eq!(
            kernel.snapshot(),
            before.snapshot(),
            "failing at step {k} of {}",
            plan.steps.len()
        );
        assert_eq!(recorded, (0..k).collect::<Vec<_>>());
    }

    /// The first step of each call the executor makes to the backend: firewall steps
    /// that follow each other are one batch, one call.
    fn call_starts(plan: &Plan) -> Vec<usize> {
        let mut starts = Vec::new();
        let mut k = 0;
        while k < plan.steps.len() {
            starts.push(k);
            k += firewall_run(&plan.steps[k..]).max(1);
        }
        starts
    }

    /// How many calls undoing `steps` makes: what the namespaces' deletions take along
    /// is not undone one by one.
    fn undo_calls(steps: &[Step]) -> usize {
        let (lists, _) = spared(&steps.iter().collect::<Vec<_>>());
        let ops: Vec<&Op> = lists.iter().flatten().collect();
        let batched = |i: usize| i > 0 && ops[i].is_firewall() && ops[i - 1].is_firewall();
        (0..ops.len()).filter(|&i| !batched(i)).count()
    }

    /// For every case and every call, failing there — with no effect, or after the
    /// operation took effect and its answer was lost — leaves the kernel as it was.
    #[test]
    fn files_go_ahead_of_their_turn_only_where_no_other_step_touches_them() {
        let write = |netns: &str, file| Op::WriteFile {
            netns: netns.into(),
            file,
            content: crate::plan::FileText::from("127.0.0.1\tlocalhost\n"),
        };
        let remove = |netns: &str, file| Op::RemoveFile {
            netns: netns.into(),
            file,
        };
        let steps: Vec<Step> = [
            Op::AddNetns { netns: "a".into() },
            write("a", EtcFile::Hosts),
            write("a", EtcFile::ResolvConf),
            // Removing b's resolv.conf may remove b's directory: b's hosts waits its turn.
            remove("b", EtcFile::ResolvConf),
            write("b", EtcFile::Hosts),
            // Written twice: the second write must come after the first.
            write("c", EtcFile::Hosts),
            write("c", EtcFile::Hosts),
        ]
        .into_iter()
        .map(|op| Step {
            op,
            undo: crate::plan::Undo::Ops(Vec::new()),
            cause: None,
        })
        .collect();
        assert_eq!(ahead_of_turn(&steps), [1, 2]);
    }

    #[test]
    fn failing_at_any_step_leaves_nothing_behind() {
        for (before, plan) in cases() {
            for (call, &k) in call_starts(&plan).iter().enumerate() {
                assert_rolls_back(&before, &plan, k, |kernel| kernel.fail_on_call(call));
                assert_rolls_back(&before, &plan, k, |kernel| kernel.fail_after_effect(call));
            }
        }
    }

    /// The audit's case: a transaction stops a sandbox (its namespace goes, its veth
    /// lingers a while) and then fails on a bridge name taken by hand. Undoing must wait
    /// for the veth's name before making the sandbox again.
    #[test]
    fn undoing_a_namespace_deletion_waits_for_its_veths() {
        let (committed, _) = plan_text(
            "network n subnet 10.9.0.0/24\nsandbox a mode none\nconnect a to n\n",
            &Model::empty(),
        );
        let mut before = kernel_of(&committed);
        let squatter = Op::AddBridge {
            bridge: "cnm-z".into(),
            mtu: 1500,
        };
        before.apply(&squatter).unwrap();
        let (_, plan) = plan_text("stop a\nnetwork z subnet 10.8.0.0/24\n", &committed);
        let k = plan.steps.iter().position(|s| s.op == squatter).unwrap();
        // The kernel refuses the bridge by itself (EEXIST): no injection.
        assert_rolls_back(&before, &plan, k, |_| {});
    }

    /// A later process undoing a namespace deletion does not know which veth names the
    /// kernel is still removing (the deletion's step did not record them, or the list
    /// was lost): a veth name found taken is waited for, then the veth made again; a
    /// name something else holds is still refused.
    #[test]
    fn an_undo_in_a_later_process_waits_for_a_vanishing_veth() {
        let (committed, _) = plan_text(
            "network n subnet 10.9.0.0/24\nsandbox a mode none\nconnect a to n\n",
            &Model::empty(),
        );
        let before = kernel_of(&committed);
        let (_, stop) = plan_text("stop a\n", &committed);
        let deletion = stop
            .steps
            .iter()
            .find(|s| matches!(s.op, Op::DelNetns { .. }))
            .unwrap();
        let Op::DelNetns { netns, links } = &deletion.op else {
            unreachable!()
        };
        assert!(!links.is_empty());
        let mut kernel = before.clone();
        // Deleted, its veth lingering, by a process that then died.
        kernel
            .apply(&Op::DelNetns {
                netns: netns.clone(),
                links: Vec::new(),
            })
            .unwrap();
        let undone = undo(std::iter::once(&*deletion.undo_ops()), &mut kernel);
        assert!(undone.is_complete(), "{:?}", undone.refused);
        assert_eq!(kernel.snapshot(), before.snapshot());

        // A veth name held by a link nothing is removing stays refused.
        let mut kernel = before.clone();
        let deletion_undo = deletion.undo_ops();
        let Some(Op::AddVeth { link, .. }) = deletion_undo.iter().find(|op| matches!(op, Op::AddVeth { .. }))
        else {
            unreachable!()
        };
        kernel
            .apply(&Op::DelNetns {
                netns: netns.clone(),
                links: Vec::new(),
            })
            .unwrap();
        kernel.settle(std::slice::from_ref(link)).unwrap();
        kernel
            .apply(&Op::AddBridge {
                bridge: link.clone(),
                mtu: 1500,
            })
            .unwrap();
        let undone = undo(std::iter::once(&*deletion.undo_ops()), &mut kernel);
        assert!(
            matches!(undone.refused[0].0, Op::AddVeth { .. }),
            "{:?}",
            undone.refused
        );
        assert_eq!(undone.refused[0].1.errno, Some(libc::EEXIST));
    }

    /// Rolling back the making of a sandbox deletes its namespace, which takes its veth
    /// (both ends), addresses and routes along; they are not undone one by one first.
    /// The veth's host end is waited for at the end.
    #[test]
    fn a_rollback_leaves_a_namespaces_interfaces_to_its_deletion() {
        let script = "network n subnet 10.1.0.0/24\nsandbox a mode none\nconnect a to n\n";
        let (_, plan) = plan_text(script, &Model::empty());
        let (lists, vanished) = spared(&plan.steps.iter().collect::<Vec<_>>());
        let ops: Vec<String> = lists
            .iter()
            .flatten()
            .map(|op| op.command(std::path::Path::new("/etc/netns")).to_string())
            .collect();
        assert_eq!(
            ops,
            [
                "rm /etc/netns/a/hosts",
                "ip netns del a",
                "sysctl -w net.ipv4.conf.cnm-n.route_localnet=0",
                "ip link set cnm-n down",
                "ip addr del 10.1.0.1/24 dev cnm-n",
                "ip link del cnm-n",
                "nft delete element inet cnm masquerade4 { 10.1.0.0/24 }",
                "nft delete element inet cnm subnets4 { 10.1.0.0/24 }",
                "nft delete element inet cnm same_bridge { \"cnm-n\" . \"cnm-n\" }",
                "nft delete element inet cnm bridges { \"cnm-n\" }",
                "nft delete table inet cnm",
            ]
        );
        let veths: Vec<&str> = plan
            .steps
            .iter()
            .filter_map(|s| match &s.op {
                Op::AddVeth { link, .. } => Some(&**link),
                _ => None,
            })
            .collect();
        assert_eq!((veths.len(), vanished), (1, vec![Name::from(veths[0])]));
    }

    /// Undo operations can be refused too. For every step k and every undo operation,
    /// the refused ones are reported, in order, and running them again later (as the
    /// next command does) finishes the rollback exactly.
    #[test]
    fn refused_undo_operations_are_reported_and_can_be_finished_later() {
        let never = AtomicBool::new(false);
        for (before, plan) in small_cases() {
            for (call, &k) in call_starts(&plan).iter().enumerate().skip(1) {
                for j in 0..undo_calls(&plan.steps[..k]) {
                    let mut kernel = before.clone();
                    kernel.fail_on_call(call);
                    kernel.fail_on_call(call + 1 + j);
                    let (_, undone) =
                        apply(&plan, &mut kernel, &mut Quiet, &never, &mut |_| Ok(())).unwrap_err();
                    assert!(!undone.is_complete(), "step {k}, undo {j}: a refusal is reported");
                    assert_eq!(undone.refused[0].1.message, "injected failure");
                    let again = undo(std::iter::once(undone.pending().as_slice()), &mut kernel);
                    assert!(again.is_complete(), "step {k}, undo {j}: {:?}", again.refused);
                    assert_eq!(kernel.snapshot(), before.snapshot(), "step {k}, undo {j}");
                }
            }
        }
    }

    /// A crash can leave any step under way: recovery in a later process (which has
    /// no memory of what was deleted) finishes or undoes it, and the rest.
    #[test]
    fn recovery_undoes_a_transaction_cut_short_at_any_step() {
        for (before, plan) in small_cases() {
            for done in 0..plan.steps.len() {
                // Steps 0..done ran; the call at step `done` may or may not have (a
                // firewall batch runs whole or not at all).
                for in_flight_ran in [false, true] {
                    let mut kernel = before.clone();
                    let in_flight = firewall_run(&plan.steps[done..]).max(1);
                    let ran = done + if in_flight_ran { in_flight } else { 0 };
                    let mut partial = Plan {
                        changes: Vec::new(),
                        steps: Vec::new(),
                    };
                    partial.steps.extend(plan.steps[..ran].iter().map(|s| Step {
                        op: s.op.clone(),
                        undo: s.undo.clone(),
                        cause: None,
                    }));
                    for step in &partial.steps {
                        kernel.apply(&step.op).unwrap();
                    }
                    let undone = recover(&plan.steps, done, &mut kernel);
                    assert!(undone.is_complete(), "done {done}: {:?}", undone.refused);
                    assert_eq!(kernel.snapshot(), before.snapshot(), "done {done}, ran {ran}");
                }
            }
        }
    }

    #[test]
    fn applying_reaches_the_kernel_the_model_stands_for() {
        let never = AtomicBool::new(false);
        let (seed, plan) = plan_script(
            concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/seed.cnm"),
            &Model::empty(),
        );
        let mut kernel = MemoryBackend::new();
        apply(&plan, &mut kernel, &mut Quiet, &never, &mut |_| Ok(())).unwrap();
        assert_eq!(kernel.snapshot(), kernel_of(&seed).snapshot());
        // Destroying it all leaves an empty kernel.
        let destroy = crate::plan::between(&seed, &Model::empty(), &Default::default());
        apply(&destroy, &mut kernel, &mut Quiet, &never, &mut |_| Ok(())).unwrap();
        assert_eq!(kernel.snapshot(), MemoryBackend::new().snapshot());
    }

    #[test]
    fn an_interrupt_rolls_back_what_was_done() {
        let (_, plan) = plan_script(
            concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/seed.cnm"),
            &Model::empty(),
        );
        let stop = AtomicBool::new(false);
        let mut kernel = MemoryBackend::new();
        // Four steps after the firewall's batch.
        let at = firewall_run(&plan.steps) + 4;
        let (result, undone) = apply(&plan, &mut kernel, &mut Quiet, &stop, &mut |i| {
            if i == at {
                stop.store(true, Ordering::SeqCst);
            }
            Ok(())
        })
        .unwrap_err();
        assert!(matches!(result, Stop::Interrupted { index } if index == at + 1));
        assert_eq!(undone.steps, at + 1);
        assert_eq!(kernel.snapshot(), MemoryBackend::new().snapshot());
    }

    #[test]
    fn refusals_are_worded_for_people() {
        let op = Op::AddVeth {
            link: "ve-1a2b3c4d5e6f".into(),
            peer: "eth0".into(),
            netns: "A".into(),
            mtu: 1500,
            mac: "02:42:0a:01:00:02".parse().unwrap(),
            master: Some("cnm-web".into()),
        };
        // The backend's own wording names the object precisely: it is let through.
        let exists = KernelError::errno(
            libc::EEXIST,
            "an interface named eth0 already exists in namespace A",
        );
        assert_eq!(describe(&op, &exists), exists.message);
        let range = KernelError::errno(libc::ERANGE, "Numerical result out of range");
        assert_eq!(
            describe(&op, &range),
            "the kernel refused MTU 1500 (out of range for this device)"
        );
        let full = KernelError::errno(libc::EXFULL, "Exchange full");
        assert_eq!(
            describe(&op, &full),
            "bridge cnm-web is full: a Linux bridge holds at most 1023 ports"
        );
    }
}

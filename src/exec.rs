//! The executor: applies a plan through a [`Backend`] as one transaction. On the first
//! failure — or when asked to stop (Ctrl-C, SIGTERM) — it runs the undo lists of the
//! completed steps, last first, keeping going past errors, and reports what it undid.

use std::sync::atomic::{AtomicBool, Ordering};

use crate::backend::{Backend, KernelError};
use crate::plan::{Op, Plan};

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

/// What undoing did: how many steps it undid, and what refused to be undone.
#[derive(Debug, Default)]
pub struct Undone {
    pub steps: usize,
    pub errors: Vec<(Op, KernelError)>,
}

impl Undone {
    pub fn error_lines(&self) -> Vec<String> {
        self.errors.iter().map(|(op, e)| format!("{op}: {e}")).collect()
    }
}

/// Told about each step as it starts, for progress display.
pub trait Progress {
    fn step(&mut self, index: usize, total: usize, op: &Op);
    fn finish(&mut self);
}

/// Applies every step; `done(i)` records step `i` as done (in the journal). On failure
/// the completed steps are undone before this returns.
pub fn apply(
    plan: &Plan,
    backend: &mut dyn Backend,
    progress: &mut dyn Progress,
    stop: &AtomicBool,
    done: &mut dyn FnMut(usize) -> Result<(), String>,
) -> Result<(), (Stop, Undone)> {
    let total = plan.steps.len();
    for (index, step) in plan.steps.iter().enumerate() {
        if stop.load(Ordering::SeqCst) {
            progress.finish();
            return Err((Stop::Interrupted { index }, undo_steps(plan, index, backend)));
        }
        progress.step(index, total, &step.op);
        if let Err(error) = backend.apply(&step.op) {
            progress.finish();
            return Err((Stop::Failed { index, error }, undo_steps(plan, index, backend)));
        }
        if let Err(error) = done(index) {
            progress.finish();
            return Err((
                Stop::Journal { index, error },
                undo_steps(plan, index + 1, backend),
            ));
        }
    }
    progress.finish();
    backend.settle().map_err(|error| {
        let index = total.saturating_sub(1);
        (Stop::Failed { index, error }, undo_steps(plan, total, backend))
    })
}

/// Undoes the first `count` steps of a plan, last first.
fn undo_steps(plan: &Plan, count: usize, backend: &mut dyn Backend) -> Undone {
    undo(
        plan.steps[..count].iter().rev().map(|s| s.undo.as_slice()),
        backend,
    )
}

/// Runs undo lists in the order given, keeping going past errors.
pub fn undo<'a>(lists: impl Iterator<Item = &'a [Op]>, backend: &mut dyn Backend) -> Undone {
    let mut undone = Undone::default();
    for list in lists {
        for op in list {
            if let Err(error) = backend.apply(op) {
                undone.errors.push((op.clone(), error));
            }
        }
        undone.steps += 1;
    }
    undone
}

/// A kernel refusal in words that name the object and where it lives.
pub fn describe(op: &Op, error: &KernelError) -> String {
    let place = |netns: &Option<String>| match netns {
        Some(netns) => format!(" in sandbox {netns}"),
        None => " on the host".to_string(),
    };
    match (error.errno, op) {
        (Some(libc::EEXIST), Op::AddNetns { netns }) => format!("a namespace named {netns} already exists"),
        (Some(libc::EEXIST), Op::AddBridge { bridge, .. }) => {
            format!("an interface named {bridge} already exists on the host")
        }
        (
            Some(libc::EEXIST),
            Op::AddVeth {
                link, peer, netns, ..
            },
        ) => format!(
            "an interface named {link} already exists on the host, or one named {peer} in sandbox {netns}"
        ),
        (Some(libc::EEXIST), Op::AddMacvlan { link, netns, .. }) => {
            format!("an interface named {link} already exists in sandbox {netns}")
        }
        (Some(libc::EEXIST), Op::AddAddress { netns, link, address }) => {
            format!("address {address} is already on {link}{}", place(netns))
        }
        (Some(libc::EEXIST), Op::AddRoute { netns, .. }) => {
            format!("sandbox {netns} already has a default route")
        }
        (Some(libc::ENODEV), op) => format!("an interface it needs is missing ({}): {op}", error.message),
        (Some(libc::ENOENT), Op::AddVeth { netns, .. } | Op::AddMacvlan { netns, .. }) => {
            format!("the namespace of sandbox {netns} is gone (deleted outside cnm?)")
        }
        (
            Some(libc::ERANGE),
            Op::AddBridge { mtu, .. } | Op::AddVeth { mtu, .. } | Op::AddMacvlan { mtu, .. },
        ) => {
            format!("the kernel refused MTU {mtu} (out of range for this device)")
        }
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
    use crate::syntax::Sources;

    struct Quiet;
    impl Progress for Quiet {
        fn step(&mut self, _: usize, _: usize, _: &Op) {}
        fn finish(&mut self) {}
    }

    fn plan_script(path: &str, committed: &Model) -> (Model, Plan) {
        let text = std::fs::read_to_string(path).unwrap();
        let mut sources = Sources::default();
        let id = sources.add(path, text);
        let (checked, plan) = crate::plan_scripts(&mut sources, &[id], committed).unwrap();
        (checked.model, plan)
    }

    /// The kernel a committed model stands for, built from nothing.
    fn kernel_of(model: &Model) -> MemoryBackend {
        let mut kernel = MemoryBackend::new();
        let plan = crate::plan::between(&Model::empty(), model, &Default::default());
        let never = AtomicBool::new(false);
        apply(&plan, &mut kernel, &mut Quiet, &never, &mut |_| Ok(())).unwrap();
        kernel
    }

    /// For every example script and every step k, failing at k leaves the kernel as it
    /// was; and applying with no failure gives the kernel the new model stands for.
    #[test]
    fn failing_at_any_step_leaves_nothing_behind() {
        let never = AtomicBool::new(false);
        let mut scripts: Vec<_> = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        scripts.sort();
        // From nothing, and from a committed seed (so that removals are undone too).
        let (seed, _) = plan_script(
            concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/seed.cnm"),
            &Model::empty(),
        );
        let mut cases: Vec<(Model, Plan)> = scripts
            .iter()
            .map(|p| plan_script(p.to_str().unwrap(), &Model::empty()))
            .map(|(_, plan)| (Model::empty(), plan))
            .collect();
        let teardown = std::env::temp_dir().join(format!("cnm-exec-teardown-{}.cnm", std::process::id()));
        std::fs::write(
            &teardown,
            "stop B\nremove sandbox A\ndisconnect C from frontend\nsandbox D\n",
        )
        .unwrap();
        cases.push((seed.clone(), plan_script(teardown.to_str().unwrap(), &seed).1));
        std::fs::remove_file(&teardown).unwrap();

        for (committed, plan) in cases {
            let before = kernel_of(&committed);
            for k in 0..plan.steps.len() {
                let mut kernel = before.clone();
                kernel.fail_on_call(k);
                let mut recorded = Vec::new();
                let (stop, undone) = apply(&plan, &mut kernel, &mut Quiet, &never, &mut |i| {
                    recorded.push(i);
                    Ok(())
                })
                .unwrap_err();
                assert!(matches!(stop, Stop::Failed { index, .. } if index == k));
                assert_eq!(undone.steps, k);
                assert!(undone.errors.is_empty(), "step {k}: {:?}", undone.errors);
                assert_eq!(
                    kernel.snapshot(),
                    before.snapshot(),
                    "failing at step {k} of {}",
                    plan.steps.len()
                );
                assert_eq!(recorded, (0..k).collect::<Vec<_>>());
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
        let (result, undone) = apply(&plan, &mut kernel, &mut Quiet, &stop, &mut |i| {
            if i == 4 {
                stop.store(true, Ordering::SeqCst);
            }
            Ok(())
        })
        .unwrap_err();
        assert!(matches!(result, Stop::Interrupted { index: 5 }));
        assert_eq!(undone.steps, 5);
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
        };
        let exists = KernelError::errno(libc::EEXIST, "File exists");
        assert_eq!(
            describe(&op, &exists),
            "an interface named ve-1a2b3c4d5e6f already exists on the host, or one named eth0 in sandbox A"
        );
        let range = KernelError::errno(libc::ERANGE, "Numerical result out of range");
        assert_eq!(
            describe(&op, &range),
            "the kernel refused MTU 1500 (out of range for this device)"
        );
    }
}

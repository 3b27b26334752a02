//! `status` and `restore`: the committed state against the kernel as read, and the
//! transaction that makes again what the kernel lacks.

use std::collections::HashSet;

use super::{Applied, Error, Session};
use crate::drift::{self, Missing, Observed};
use crate::exec::Progress;
use crate::plan::{Name, Op, Plan, Step, Undo};

impl Session {
    /// What the committed state holds and the kernel lacks, operation by operation;
    /// unless `deep`, inside the sandboxes' namespaces only whether they exist.
    pub fn drift(&mut self, deep: bool) -> Result<Vec<Missing>, Error> {
        let committed = self.committed()?;
        if committed.has_nothing() {
            // Nothing committed, nothing to lack: the kernel is not read (reading the
            // firewall starts `nft`, which a first `cnm plan` would wait for).
            return Ok(Vec::new());
        }
        let observed = Observed::read(&committed, &self.config.netns_dir, &self.config.etc_dir, deep)
            .map_err(|e| Error::Message(format!("cannot read the kernel: {e}")))?;
        Ok(drift::missing(&committed, &observed, &self.config.etc_dir))
    }

    /// Makes again, as one transaction with rollback, what the committed state holds and
    /// the kernel lacks (after a reboot: everything), with the same names, addresses and
    /// MACs; what exists and matches is not touched. `None` when nothing is missing.
    pub fn restore(&mut self, progress: &mut dyn Progress) -> Result<Option<Applied>, Error> {
        let mut journal = self.lock()?;
        self.recover(&mut journal)?;
        let committed = journal.state()?;
        let observed = Observed::read(&committed, &self.config.netns_dir, &self.config.etc_dir, true)
            .map_err(|e| Error::Message(format!("cannot read the kernel: {e}")))?;
        let missing = drift::missing(&committed, &observed, &self.config.etc_dir);
        if missing.is_empty() {
            return Ok(None);
        }
        // A namespace deleted outside cnm takes its veths along, in the background:
        // their host ends hold their names until the kernel has removed them. Those of
        // the namespaces made again are waited for before anything is made; a name
        // still held after that is refused, and said, by the step that needs it.
        let remade: HashSet<&str> = missing
            .iter()
            .filter_map(|m| match &m.op {
                Op::AddNetns { netns } => Some(&**netns),
                _ => None,
            })
            .collect();
        let vanishing: Vec<Name> = missing
            .iter()
            .filter_map(|m| match &m.op {
                Op::AddVeth { link, netns, .. } if remade.contains(&**netns) => Some(link.clone()),
                _ => None,
            })
            .collect();
        if !vanishing.is_empty() {
            let _ = self.kernel()?.settle(&vanishing);
        }
        let steps = missing
            .into_iter()
            .map(|m| Step {
                undo: Undo::Inverse,
                op: m.op,
                cause: None,
            })
            .collect();
        let plan = Plan {
            changes: Vec::new(),
            steps,
        };
        let sources = crate::syntax::Sources::default();
        let tx = self.transact(
            &mut journal,
            &plan,
            &committed,
            &committed,
            &[],
            &sources,
            None,
            progress,
        )?;
        Ok(Some(Applied {
            plan,
            tx,
            model: committed,
            actions: Vec::new(),
        }))
    }
}

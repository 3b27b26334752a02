//! `gc`: removing what cnm made that the committed state does not know.

use super::{Error, Session};
use crate::backend::KernelError;
use crate::gc;
use crate::plan::Op;

impl Session {
    /// The leftovers ([`gc::leftovers`]), removed unless `dry_run`, each with the
    /// kernel's refusal if it refused. The state directory stays locked meanwhile, so
    /// that nothing a concurrent apply makes is taken for a leftover.
    pub fn gc(&mut self, dry_run: bool) -> Result<Vec<(Op, Option<KernelError>)>, Error> {
        let mut journal = self.lock()?;
        self.recover(&mut journal)?;
        let committed = journal.state()?;
        let ops = gc::leftovers(&committed, &self.config.netns_dir, &self.config.etc_dir)
            .map_err(|e| Error::Message(format!("cannot read the kernel: {e}")))?;
        if dry_run {
            return Ok(ops.into_iter().map(|op| (op, None)).collect());
        }
        let backend = self.kernel()?;
        let results = ops
            .into_iter()
            .map(|op| {
                let done = match op.is_firewall() {
                    true => backend.firewall(std::slice::from_ref(&op)),
                    false => backend.apply(&op),
                };
                (op, done.err())
            })
            .collect();
        drop(journal);
        Ok(results)
    }
}
